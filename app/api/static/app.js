/* stock-tracker dashboard: /ws/market rendered into the board, in place.
 *
 * Every element a test (or a curious trader with devtools) may read carries
 * data-field="<schema field>" and data-value="<raw number>", next to the
 * formatted text. */
"use strict";

(() => {
  // Futures contracts (legacy VN30F2612 and KRX 41I1GC000 codes) are not VN30 stocks.
  const FUTURES = /^(VN30F|41I1)/;
  const INDEX_ORDER = ["VN30", "VNINDEX", "HNXIndex", "HNX30", "HNXUpcomIndex"];
  // HOSE continuous session minutes with the lunch break folded out, so the
  // intraday line reads like the trading day rather than the wall clock.
  const MORNING = [9 * 60, 11 * 60 + 30];
  const AFTERNOON = [13 * 60, 14 * 60 + 45];
  const DAY_MINUTES = (MORNING[1] - MORNING[0]) + (AFTERNOON[1] - AFTERNOON[0]);
  const RATIO_UP = 0.55;
  const RATIO_DOWN = 0.45;
  // Twice the server heartbeat and a half: longer silence means a dead socket.
  const STALE_MS = 75_000;

  const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

  const $ = (sel, root = document) => root.querySelector(sel);
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  // ---- formatting --------------------------------------------------------------

  const fmtInt = (v) => (isNum(v) ? nf0.format(v) : "—");
  const fmt2 = (v) => (isNum(v) ? nf2.format(v) : "—");
  const signed = (v, f) => (isNum(v) && v > 0 ? "+" : "") + f(v);
  const fmtPct = (v) => (isNum(v) ? nf1.format(v * 100) + " %" : "—");

  /** VND in tỷ (10^9) or triệu (10^6): a board column of raw VND is unreadable. */
  function fmtVnd(v) {
    if (!isNum(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e9) return nf2.format(v / 1e9) + " tỷ";
    if (a >= 1e6) return nf1.format(v / 1e6) + " tr";
    return nf0.format(v);
  }

  /** "2026-11-25T11:16:40+07:00" -> "11:16:40": times are already in market time. */
  function fmtTime(iso) {
    return typeof iso === "string" && iso.length >= 19 ? iso.slice(11, 19) : "—";
  }

  const signClass = (v) => (!isNum(v) ? "" : v > 0 ? "up" : v < 0 ? "down" : "ref");

  function ratioClass(r) {
    if (!isNum(r)) return "";
    return r > RATIO_UP ? "up" : r < RATIO_DOWN ? "down" : "ref";
  }

  /** Board price colours (ceiling purple, floor cyan, reference yellow, up/down);
   * used once the snapshot carries prices, SessionStats does not yet. */
  function priceClass(s) {
    const p = s.last_price;
    if (!isNum(p) || p === 0) return "";
    if (isNum(s.ceiling) && s.ceiling > 0 && p >= s.ceiling) return "ceil";
    if (isNum(s.floor) && s.floor > 0 && p <= s.floor) return "floor";
    if (isNum(s.ref_price) && s.ref_price > 0) return p > s.ref_price ? "up" : p < s.ref_price ? "down" : "ref";
    return signClass(s.change);
  }

  const COLOUR_CLASSES = ["up", "down", "ref", "ceil", "floor"];

  /** Write one cell; touches the DOM only when the raw value changed. */
  function setField(el, raw, text, colour, flash) {
    if (!el) return false;
    const key = raw === null || raw === undefined ? "" : String(raw);
    if (el.dataset.value === key && el.textContent === text) return false;
    const before = el.dataset.value;
    el.dataset.value = key;
    writeText(el, text);
    if (colour !== undefined) {
      for (const c of COLOUR_CLASSES) el.classList.toggle(c, c === colour);
    }
    if (flash && before !== "" && before !== undefined && isNum(raw)) flashCell(el, raw > Number(before));
    return true;
  }

  /** Text of a cell that may hold a flash overlay, which must survive the write. */
  function writeText(node, text) {
    const fx = node.lastElementChild;
    if (!fx || !fx.classList.contains("fx")) node.textContent = text;
    else if (node.firstChild.nodeType === Node.TEXT_NODE) node.firstChild.data = text;
    else node.prepend(text);
  }

  const calm = matchMedia("(prefers-reduced-motion: reduce)");

  /** Blink a changed cell. Only the opacity of an overlay animates, so the
   * browser does not lay the page out again on every frame of the blink. */
  function flashCell(node, rising) {
    if (calm.matches) return;
    let fx = node.querySelector(":scope > .fx");
    if (!fx) {
      node.classList.add("flash");
      fx = el("i", { class: "fx", "aria-hidden": "true" });
      node.append(fx);
    }
    fx.classList.toggle("down", !rising);
    fx.animate([{ opacity: 1 }, { opacity: 0 }], { duration: 600, easing: "ease-out" });
  }

  /** Bars are sized by transform, not width: a transition then costs no layout. */
  function setScale(node, fraction) {
    const css = `scaleX(${fraction})`;
    if (node.style.transform !== css) node.style.transform = css;
  }

  // Re-setting an unchanged attribute still invalidates style: compare first.
  function setTitle(node, text) {
    if (node.title !== text) node.title = text;
  }

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  const fieldsOf = (root) => {
    const map = {};
    for (const node of root.querySelectorAll("[data-field]")) map[node.dataset.field] = node;
    return map;
  };

  const buyRatio = (s) => {
    const b = s.mua_chu_dong_volume || 0;
    const a = s.ban_chu_dong_volume || 0;
    return b + a > 0 ? b / (b + a) : null;
  };

  // ---- VN30 board ----------------------------------------------------------------

  const board = {
    body: $("#board-body"),
    card: $(".board-card"),
    total: fieldsOf($("#board-total")),
    rows: new Map(), // symbol -> {tr, f: fields, data}
    sortKey: "symbol",
    sortDir: 1,
  };

  function boardRow(symbol) {
    const bar = (side, field) =>
      el("td", { class: `num bar-cell ${side}`, "data-field": field, "data-value": "" }, [
        el("span", { class: "bar" }),
        el("span", { class: "n", text: "—" }),
      ]);
    const tr = el("tr", { "data-symbol": symbol }, [
      el("th", { class: "sym", scope: "row", text: symbol }),
      el("td", { class: "num price-col", "data-field": "last_price", "data-value": "" }),
      el("td", { class: "num price-col", "data-field": "change", "data-value": "" }),
      bar("buy", "mua_chu_dong_volume"),
      bar("sell", "ban_chu_dong_volume"),
      el("td", { class: "num", "data-field": "neutral_volume", "data-value": "" }),
      el("td", { class: "num", "data-field": "total_volume", "data-value": "" }),
      el("td", { class: "num ratio", "data-field": "buy_ratio", "data-value": "" }),
      el("td", { class: "num", "data-field": "mua_chu_dong_value", "data-value": "" }),
      el("td", { class: "num", "data-field": "ban_chu_dong_value", "data-value": "" }),
      el("td", { class: "num time", "data-field": "last_updated", "data-value": "" }),
    ]);
    return { tr, f: fieldsOf(tr), data: null };
  }

  /** A bar cell: the number lives in .n so the bar underneath survives updates. */
  function setBar(td, raw, flash) {
    const n = td.querySelector(".n");
    const key = String(raw);
    if (td.dataset.value === key) return;
    const before = td.dataset.value;
    td.dataset.value = key;
    n.textContent = fmtInt(raw);
    if (flash && before !== "") flashCell(td, td.classList.contains("buy"));
  }

  function sizeBar(td, maxVol) {
    const v = Number(td.dataset.value) || 0;
    const scale = maxVol > 0 ? Math.round((v / maxVol) * 1000) / 1000 : 0;
    setScale(td.firstChild, scale);
  }

  function renderBoard(quotes) {
    const stocks = [];
    const futures = [];
    for (const s of Object.values(quotes || {})) (FUTURES.test(s.symbol) ? futures : stocks).push(s);

    const seen = new Set();
    let maxVol = 0;
    let withPrices = false;
    const sum = { b: 0, s: 0, n: 0, t: 0, bv: 0, sv: 0 };
    for (const s of stocks) {
      seen.add(s.symbol);
      let row = board.rows.get(s.symbol);
      const fresh = !row;
      if (fresh) {
        row = boardRow(s.symbol);
        board.rows.set(s.symbol, row);
      }
      row.data = { ...s, buy_ratio: buyRatio(s) };
      const f = row.f;
      const flash = !fresh;
      setBar(f.mua_chu_dong_volume, s.mua_chu_dong_volume, flash);
      setBar(f.ban_chu_dong_volume, s.ban_chu_dong_volume, flash);
      setField(f.neutral_volume, s.neutral_volume, fmtInt(s.neutral_volume));
      setField(f.total_volume, s.total_volume, fmtInt(s.total_volume), undefined, flash);
      const r = row.data.buy_ratio;
      setField(f.buy_ratio, r === null ? "" : r, fmtPct(r), ratioClass(r));
      setField(f.mua_chu_dong_value, s.mua_chu_dong_value, fmtVnd(s.mua_chu_dong_value));
      setField(f.ban_chu_dong_value, s.ban_chu_dong_value, fmtVnd(s.ban_chu_dong_value));
      setField(f.last_updated, s.last_updated || "", fmtTime(s.last_updated));
      if (isNum(s.last_price)) {
        withPrices = true;
        const pc = priceClass(s);
        setField(f.last_price, s.last_price, fmt2(s.last_price), pc, flash);
        setField(f.change, isNum(s.change) ? s.change : "", signed(s.change, fmt2), pc);
        const sym = row.tr.firstChild;
        if (sym.className !== "sym " + pc) sym.className = "sym " + pc;
      }
      setTitle(f.mua_chu_dong_value, fmtInt(s.mua_chu_dong_value) + " VND");
      setTitle(f.ban_chu_dong_value, fmtInt(s.ban_chu_dong_value) + " VND");
      maxVol = Math.max(maxVol, s.mua_chu_dong_volume || 0, s.ban_chu_dong_volume || 0);
      sum.b += s.mua_chu_dong_volume || 0;
      sum.s += s.ban_chu_dong_volume || 0;
      sum.n += s.neutral_volume || 0;
      sum.t += s.total_volume || 0;
      sum.bv += s.mua_chu_dong_value || 0;
      sum.sv += s.ban_chu_dong_value || 0;
    }
    for (const [symbol, row] of board.rows) {
      if (!seen.has(symbol)) {
        row.tr.remove();
        board.rows.delete(symbol);
      }
    }
    // Bars share one scale so a glance across rows compares symbols.
    for (const row of board.rows.values()) {
      sizeBar(row.f.mua_chu_dong_volume, maxVol);
      sizeBar(row.f.ban_chu_dong_volume, maxVol);
    }
    board.card.classList.toggle("with-prices", withPrices);
    orderBoard();

    const t = board.total;
    const tr = sum.b + sum.s > 0 ? sum.b / (sum.b + sum.s) : null;
    setField(t.mua_chu_dong_volume, sum.b, fmtInt(sum.b));
    setField(t.ban_chu_dong_volume, sum.s, fmtInt(sum.s));
    setField(t.neutral_volume, sum.n, fmtInt(sum.n));
    setField(t.total_volume, sum.t, fmtInt(sum.t));
    setField(t.buy_ratio, tr === null ? "" : tr, fmtPct(tr), ratioClass(tr));
    setField(t.mua_chu_dong_value, sum.bv, fmtVnd(sum.bv));
    setField(t.ban_chu_dong_value, sum.sv, fmtVnd(sum.sv));
    const count = $("#board-count");
    if (count.textContent !== `${stocks.length} mã`) count.textContent = `${stocks.length} mã`;
    renderFuturesFlow(futures);
  }

  function orderBoard() {
    const key = board.sortKey;
    const dir = board.sortDir;
    const rows = [...board.rows.values()].sort((a, b) => {
      const x = key === "symbol" ? a.data.symbol : a.data[key];
      const y = key === "symbol" ? b.data.symbol : b.data[key];
      if (x === y) return a.data.symbol < b.data.symbol ? -1 : 1;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    const empty = board.body.querySelector(".empty-row");
    if (empty) empty.hidden = rows.length > 0;
    // Moving a row restarts its animations and costs layout: only when the order changed.
    let node = board.body.firstElementChild;
    if (node === empty) node = node.nextElementSibling;
    let same = true;
    for (const row of rows) {
      if (node !== row.tr) {
        same = false;
        break;
      }
      node = node.nextElementSibling;
    }
    if (same && !node) return;
    const frag = document.createDocumentFragment();
    for (const row of rows) frag.append(row.tr);
    board.body.append(frag);
  }

  for (const th of document.querySelectorAll("#board thead th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      if (board.sortKey === key) board.sortDir = -board.sortDir;
      else {
        board.sortKey = key;
        board.sortDir = key === "symbol" ? 1 : -1; // numbers: biggest first
      }
      for (const other of document.querySelectorAll("#board thead th")) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", board.sortDir > 0 ? "ascending" : "descending");
      orderBoard();
    });
  }

  // ---- futures ---------------------------------------------------------------------

  const futures = { card: $("#futures"), f: fieldsOf($("#futures")), flow: new Map() };

  function renderFutures(d) {
    const f = futures.f;
    futures.card.dataset.state = d ? "live" : "empty";
    if (!d) {
      const blank = { basis: "n/a", basis_pct: "n/a", is_premium: "n/a", change: "", change_pct: "" };
      for (const [name, node] of Object.entries(f)) setField(node, "", blank[name] ?? "—", "");
      return;
    }
    const cls = signClass(d.change);
    setField(f.symbol, d.symbol, d.symbol);
    setField(f.last_price, d.last_price, fmt2(d.last_price), cls, true);
    setField(f.change, d.change, signed(d.change, fmt2), cls);
    setField(f.change_pct, d.change_pct, signed(d.change_pct, fmt2) + " %", cls);
    setField(f.volume, d.volume, fmtInt(d.volume));
    setField(f.bid_price, d.bid_price, d.bid_price ? fmt2(d.bid_price) : "—");
    setField(f.ask_price, d.ask_price, d.ask_price ? fmt2(d.ask_price) : "—");
    const hasBasis = isNum(d.basis);
    const bcls = hasBasis ? signClass(d.basis) : "";
    setField(f.basis, hasBasis ? d.basis : "", hasBasis ? signed(d.basis, fmt2) : "n/a", bcls);
    setField(f.basis_pct, isNum(d.basis_pct) ? d.basis_pct : "", isNum(d.basis_pct) ? signed(d.basis_pct, fmt2) + " %" : "n/a", bcls);
    const premium = d.is_premium === true ? "Premium · basis dương" : d.is_premium === false ? "Discount · basis âm" : "n/a";
    setField(f.is_premium, d.is_premium === null || d.is_premium === undefined ? "" : d.is_premium, premium, bcls);
    setField(f.last_updated, d.last_updated || "", fmtTime(d.last_updated));
  }

  function renderFuturesFlow(list) {
    const body = $("#futures-flow-body");
    list.sort((a, b) => (a.symbol < b.symbol ? -1 : 1));
    const seen = new Set();
    for (const s of list) {
      seen.add(s.symbol);
      let row = futures.flow.get(s.symbol);
      if (!row) {
        const tr = el("tr", { "data-symbol": s.symbol }, [
          el("th", { class: "sym", scope: "row", text: s.symbol }),
          el("td", { class: "num up", "data-field": "mua_chu_dong_volume", "data-value": "" }),
          el("td", { class: "num down", "data-field": "ban_chu_dong_volume", "data-value": "" }),
          el("td", { class: "num", "data-field": "buy_ratio", "data-value": "" }),
          el("td", { class: "num", "data-field": "total_volume", "data-value": "" }),
        ]);
        row = { tr, f: fieldsOf(tr) };
        futures.flow.set(s.symbol, row);
        body.append(tr);
      }
      const r = buyRatio(s);
      setField(row.f.mua_chu_dong_volume, s.mua_chu_dong_volume, fmtInt(s.mua_chu_dong_volume));
      setField(row.f.ban_chu_dong_volume, s.ban_chu_dong_volume, fmtInt(s.ban_chu_dong_volume));
      setField(row.f.buy_ratio, r === null ? "" : r, fmtPct(r), ratioClass(r));
      setField(row.f.total_volume, s.total_volume, fmtInt(s.total_volume));
    }
    for (const [symbol, row] of futures.flow) {
      if (!seen.has(symbol)) {
        row.tr.remove();
        futures.flow.delete(symbol);
      }
    }
    $("#futures-flow").hidden = list.length === 0;
  }

  // ---- foreign flow -------------------------------------------------------------------

  const foreign = { card: $("#foreign"), f: fieldsOf($("#foreign .totals")), top: {} };

  function topTable(id) {
    const body = $(`#${id} tbody`);
    const rows = [];
    for (let i = 0; i < 5; i++) {
      const tr = el("tr", { "data-rank": String(i + 1), "data-symbol": "" }, [
        el("th", { class: "sym", scope: "row", text: "" }),
        el("td", { class: "num", "data-field": "net_value", "data-value": "" }),
        el("td", { class: "num", "data-field": "net_volume", "data-value": "" }),
        el("td", { class: "num", "data-field": "buy_speed_per_min", "data-value": "" }),
        el("td", { class: "num", "data-field": "sell_speed_per_min", "data-value": "" }),
      ]);
      body.append(tr);
      rows.push({ tr, sym: tr.firstChild, f: fieldsOf(tr) });
    }
    return rows;
  }
  foreign.top.buy = topTable("foreign-top-buy");
  foreign.top.sell = topTable("foreign-top-sell");

  function renderTop(rows, list) {
    rows.forEach((row, i) => {
      const x = (list || [])[i];
      row.tr.hidden = !x;
      if (!x) return;
      if (row.tr.dataset.symbol !== x.symbol) {
        row.tr.dataset.symbol = x.symbol;
        row.sym.textContent = x.symbol;
      }
      const cls = signClass(x.net_value);
      setField(row.f.net_value, x.net_value, signed(x.net_value, fmtVnd), cls);
      setField(row.f.net_volume, x.net_volume, signed(x.net_volume, fmtInt), signClass(x.net_volume));
      setField(row.f.buy_speed_per_min, x.buy_speed_per_min, fmtInt(x.buy_speed_per_min));
      setField(row.f.sell_speed_per_min, x.sell_speed_per_min, fmtInt(x.sell_speed_per_min));
      setTitle(row.f.net_value, fmtInt(x.net_value) + " VND");
      setTitle(row.f.buy_speed_per_min, `gia tốc ${signed(x.buy_acceleration, fmtInt)} /phút`);
      setTitle(row.f.sell_speed_per_min, `gia tốc ${signed(x.sell_acceleration, fmtInt)} /phút`);
    });
  }

  function renderForeign(s) {
    foreign.card.dataset.state = s ? "live" : "empty";
    const d = s || {};
    const f = foreign.f;
    setField(f.total_buy_value, d.total_buy_value ?? "", fmtVnd(d.total_buy_value));
    setField(f.total_sell_value, d.total_sell_value ?? "", fmtVnd(d.total_sell_value));
    setField(f.total_net_value, d.total_net_value ?? "", signed(d.total_net_value, fmtVnd), signClass(d.total_net_value));
    setField(f.total_buy_volume, d.total_buy_volume ?? "", fmtInt(d.total_buy_volume));
    setField(f.total_sell_volume, d.total_sell_volume ?? "", fmtInt(d.total_sell_volume));
    setField(f.total_net_volume, d.total_net_volume ?? "", signed(d.total_net_volume, fmtInt), signClass(d.total_net_volume));
    for (const k of ["total_buy_value", "total_sell_value", "total_net_value"]) setTitle(f[k], fmtInt(d[k]) + " VND");
    const bv = d.total_buy_value || 0;
    const sv = d.total_sell_value || 0;
    const split = $("#foreign-split-buy");
    split.parentElement.classList.toggle("none", bv + sv === 0);
    setScale(split, bv + sv > 0 ? bv / (bv + sv) : 0);
    renderTop(foreign.top.buy, d.top_buy);
    renderTop(foreign.top.sell, d.top_sell);
  }

  // ---- indices -------------------------------------------------------------------------

  const indices = { wrap: $("#indices"), cards: new Map() };
  const SPARK_W = 300;
  const SPARK_H = 64;
  const GRID_TIMES = ["10:00", "11:00", "11:30", "14:00"];

  function indexCard(id) {
    const line = svg("polyline", { class: "line", "data-field": "intraday", "data-value": "0", points: "" });
    const ref = svg("line", { class: "refline", x1: "0", x2: String(SPARK_W), y1: "-10", y2: "-10" });
    const dot = svg("circle", { class: "last", r: "2.5", cx: "-10", cy: "-10" });
    const spark = svg("svg", { class: "spark", viewBox: `0 0 ${SPARK_W} ${SPARK_H}`, preserveAspectRatio: "none", role: "img" });
    spark.append(svg("title"));
    spark.firstChild.textContent = `${id} intraday, 09:00–14:45 (nghỉ trưa 11:30–13:00 lược bỏ)`;
    for (const t of GRID_TIMES) {
      const gx = ((sessionMinute(`T${t}`) / DAY_MINUTES) * SPARK_W).toFixed(1);
      spark.append(svg("line", { class: t === "11:30" ? "grid lunch" : "grid", x1: gx, x2: gx, y1: "0", y2: String(SPARK_H) }));
    }
    spark.append(ref, line, dot);
    const card = el("article", { class: "card index-card", "data-index": id }, [
      el("header", { class: "card-head" }, [
        el("h2", { text: id }),
        el("span", { class: "time muted", "data-field": "last_updated", "data-value": "", text: "—" }),
      ]),
      el("div", { class: "idx-main" }, [
        el("span", { class: "big", "data-field": "value", "data-value": "", text: "—" }),
        el("span", { class: "chg", "data-field": "change", "data-value": "", text: "" }),
        el("span", { class: "chg", "data-field": "ratio_change", "data-value": "", text: "" }),
      ]),
      spark,
      el("div", { class: "breadth" }, [
        el("span", { class: "up", title: "Advances (Tăng)" }, [
          "▲ ", el("b", { "data-field": "advances", "data-value": "", text: "—" }),
        ]),
        el("span", { class: "ref", title: "Unchanged (Đứng giá)" }, [
          "■ ", el("b", { "data-field": "no_changes", "data-value": "", text: "—" }),
        ]),
        el("span", { class: "down", title: "Declines (Giảm)" }, [
          "▼ ", el("b", { "data-field": "declines", "data-value": "", text: "—" }),
        ]),
        el("span", { class: "muted vol", title: "Total volume (Tổng KL)" }, [
          "KL ", el("b", { "data-field": "total_volume", "data-value": "", text: "—" }),
        ]),
      ]),
      el("div", { class: "ratio-bar", title: "Advance ratio = advances / (advances + declines)" }, [
        el("span", { class: "adv", "data-field": "advance_ratio", "data-value": "" }),
        el("em", { class: "ratio-label", text: "" }),
      ]),
    ]);
    return { card, f: fieldsOf(card), line, ref, dot, ratioLabel: card.querySelector(".ratio-label"), key: "" };
  }

  function sessionMinute(iso) {
    const m = /T(\d{2}):(\d{2})/.exec(iso || "");
    if (!m) return null;
    const t = Number(m[1]) * 60 + Number(m[2]);
    if (t <= MORNING[0]) return 0;
    if (t <= MORNING[1]) return t - MORNING[0];
    const morning = MORNING[1] - MORNING[0];
    if (t <= AFTERNOON[0]) return morning;
    return Math.min(DAY_MINUTES, morning + t - AFTERNOON[0]);
  }

  function drawSpark(c, intraday, prior, cls) {
    const pts = intraday || [];
    const last = pts.length ? pts[pts.length - 1] : null;
    // The line is redrawn only when a point was added or the last one moved.
    const key = `${pts.length}|${last ? last.timestamp + last.value : ""}|${prior}`;
    if (key === c.key) return;
    c.key = key;
    c.line.dataset.value = String(pts.length);
    c.line.setAttribute("class", "line " + cls);
    if (!pts.length) {
      c.line.setAttribute("points", "");
      c.dot.setAttribute("cx", "-10");
      return;
    }
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p.value);
      hi = Math.max(hi, p.value);
    }
    const withRef = isNum(prior) && prior > 0;
    if (withRef) {
      lo = Math.min(lo, prior);
      hi = Math.max(hi, prior);
    }
    const span = hi - lo || Math.max(Math.abs(hi) * 0.001, 1);
    const pad = 4;
    const y = (v) => (pad + (1 - (v - lo) / span) * (SPARK_H - 2 * pad)).toFixed(1);
    const timed = pts.every((p) => sessionMinute(p.timestamp) !== null);
    const x = (p, i) => {
      const frac = timed ? sessionMinute(p.timestamp) / DAY_MINUTES : pts.length > 1 ? i / (pts.length - 1) : 1;
      return (frac * SPARK_W).toFixed(1);
    };
    const coords = pts.map((p, i) => `${x(p, i)},${y(p.value)}`);
    if (coords.length === 1) coords.unshift(`0,${y(pts[0].value)}`);
    c.line.setAttribute("points", coords.join(" "));
    const [lx, ly] = coords[coords.length - 1].split(",");
    c.dot.setAttribute("cx", lx);
    c.dot.setAttribute("cy", ly);
    c.dot.setAttribute("class", "last " + cls);
    const ry = withRef ? y(prior) : "-10";
    c.ref.setAttribute("y1", ry);
    c.ref.setAttribute("y2", ry);
  }

  function renderIndices(all) {
    const ids = Object.keys(all || {}).sort((a, b) => {
      const ia = INDEX_ORDER.indexOf(a);
      const ib = INDEX_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
    });
    $("#indices-empty").hidden = ids.length > 0;
    let anchor = $("#indices-empty");
    for (const id of ids) {
      const d = all[id];
      let c = indices.cards.get(id);
      const fresh = !c;
      if (fresh) {
        c = indexCard(id);
        indices.cards.set(id, c);
      }
      if (anchor.nextElementSibling !== c.card) anchor.after(c.card);
      anchor = c.card;
      const cls = signClass(d.change);
      const f = c.f;
      setField(f.value, d.value, fmt2(d.value), cls, !fresh);
      setField(f.change, d.change, signed(d.change, fmt2), cls);
      setField(f.ratio_change, d.ratio_change, `(${signed(d.ratio_change, fmt2)} %)`, cls);
      setField(f.advances, d.advances, fmtInt(d.advances));
      setField(f.no_changes, d.no_changes, fmtInt(d.no_changes));
      setField(f.declines, d.declines, fmtInt(d.declines));
      setField(f.total_volume, d.total_volume, fmtInt(d.total_volume));
      setField(f.last_updated, d.last_updated || "", fmtTime(d.last_updated));
      const ar = isNum(d.advance_ratio) ? d.advance_ratio : 0;
      if (f.advance_ratio.dataset.value !== String(ar)) {
        f.advance_ratio.dataset.value = String(ar);
        setScale(f.advance_ratio, ar);
        c.ratioLabel.textContent = `Tỷ lệ tăng ${fmtPct(ar)}`;
      }
      setTitle(c.card, `${id}: tham chiếu ${fmt2(d.prior_value)}`);
      drawSpark(c, d.intraday, d.prior_value, cls);
    }
    for (const [id, c] of indices.cards) {
      if (!(all && id in all)) {
        c.card.remove();
        indices.cards.delete(id);
      }
    }
  }

  // ---- header ---------------------------------------------------------------------------

  function latestTime(snap) {
    let latest = "";
    const consider = (t) => {
      if (typeof t === "string" && t > latest) latest = t;
    };
    for (const s of Object.values(snap.quotes || {})) consider(s.last_updated);
    for (const i of Object.values(snap.indices || {})) consider(i.last_updated);
    if (snap.derivatives) consider(snap.derivatives.last_updated);
    for (const x of [...((snap.foreign || {}).top_buy || []), ...((snap.foreign || {}).top_sell || [])]) consider(x.last_updated);
    return latest;
  }

  function renderHeader(snap) {
    const latest = latestTime(snap);
    const node = $("#last-update");
    const text = latest ? fmtTime(latest) : "—";
    if (node.dataset.value !== latest) {
      node.dataset.value = latest;
      node.textContent = text;
    }
    setTitle(node, "nhận lúc " + new Date().toLocaleTimeString("vi-VN"));
    const date = latest ? latest.slice(0, 10).split("-").reverse().join("/") : "—";
    setField($("#session-date"), latest.slice(0, 10), date);
    // A simulated market's clock is its newest event time: it ticks with the data.
    if (sim.on && latest) setField(sim.clock, latest, text);
  }

  function render(snap) {
    renderHeader(snap);
    renderIndices(snap.indices);
    renderBoard(snap.quotes);
    renderFutures(snap.derivatives);
    renderForeign(snap.foreign);
  }

  // Messages can arrive faster than frames paint: keep only the newest snapshot.
  let pending = null;
  let frameRequested = false;
  function schedule(snap) {
    pending = snap;
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      const snapNow = pending;
      pending = null;
      if (snapNow) render(snapNow);
    });
  }

  // ---- status pills -------------------------------------------------------------------------

  function pill(node, state, label) {
    if (node.dataset.state === state && node.lastElementChild.textContent === label) return;
    node.dataset.state = state;
    node.lastElementChild.textContent = label;
  }

  const feedPill = $("#feed-status");
  const socketPill = $("#socket-status");

  // ---- simulated market (stock-tracker demo): told by /api/feed ---------------------------

  const sim = { on: false, phase: "", badge: $("#sim-badge"), clock: $("#sim-clock"), timer: null };
  let feedState = [null, undefined];

  async function loadFeed() {
    clearTimeout(sim.timer);
    let feed;
    try {
      const res = await fetch("/api/feed", { cache: "no-store" });
      if (!res.ok) return;
      feed = await res.json();
    } catch {
      return; // the socket's own retry brings us back here
    }
    sim.on = feed.simulated === true;
    sim.phase = sim.on ? feed.phase || "" : "";
    sim.badge.hidden = !sim.on;
    sim.badge.dataset.phase = sim.phase;
    $("#sim-phase").textContent = sim.phase === "catch_up" ? "· tua nhanh" : "";
    if (sim.on) {
      const day = (feed.sim_date || "").split("-").reverse().join("/");
      setTitle(sim.badge, `Thị trường mô phỏng (simulated market), phiên ${day}, chạy thật từ ${feed.sim_from} ` +
        `x${feed.speed}: không phải dữ liệu SSI thật`);
      // The fast-forward ends without a status change: look again until it has.
      if (sim.phase === "catch_up") sim.timer = setTimeout(loadFeed, 2_000);
    }
    setFeed(...feedState);
  }

  function setFeed(connected, reason) {
    feedState = [connected, reason];
    if (sim.on && sim.phase === "catch_up" && connected !== true) {
      pill(feedPill, "connecting", "Nguồn: mô phỏng, đang tua nhanh");
      return;
    }
    if (connected === true) pill(feedPill, "connected", "Nguồn: đã kết nối");
    else if (connected === false && reason === "store") pill(feedPill, "disconnected", "Máy chủ dữ liệu: mất kết nối");
    else if (connected === false) pill(feedPill, "disconnected", "Nguồn: mất kết nối");
    else pill(feedPill, "unknown", "Nguồn: chưa rõ");
  }

  // ---- the WebSocket, reconnecting with backoff ---------------------------------------------------

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const wsUrl =
    `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/market` +
    (token !== null ? `?token=${encodeURIComponent(token)}` : "");

  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let countdown = null;
  let lastRx = 0;

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdown);
    retryTimer = null;
    pill(socketPill, "connecting", attempt ? `Đang kết nối lại… (lần ${attempt + 1})` : "Đang kết nối…");
    let ws;
    try {
      ws = new WebSocket(wsUrl);
    } catch (err) {
      retry(0, String(err));
      return;
    }
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      lastRx = Date.now();
      pill(socketPill, "open", "Kết nối: trực tuyến");
      loadFeed();
    };
    ws.onmessage = (ev) => {
      lastRx = Date.now();
      // The heartbeat is the binary frame "ping"; it only proves the link is alive.
      if (typeof ev.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && msg.type === "status") {
        setFeed(msg.connected, msg.reason);
        loadFeed();
        return;
      }
      attempt = 0; // reset only once data flows, so a socket that opens then drops keeps backing off
      schedule(msg);
    };
    ws.onclose = (ev) => {
      if (socket !== ws) return;
      socket = null;
      setFeed(null); // the next connection tells us again
      retry(ev.code, ev.reason);
    };
  }

  const CLOSE_REASONS = {
    1008: "token không hợp lệ",
    1009: "tin nhắn quá lớn",
    1013: "quá nhiều kết nối",
    4001: "máy khách quá chậm",
  };

  function retry(code, reason) {
    const why = CLOSE_REASONS[code] || reason || "mất kết nối";
    if (code === 1008) {
      // A wrong token stays wrong: retrying would only hammer the server.
      pill(socketPill, "closed", `Đã đóng: ${why} (1008)`);
      return;
    }
    const base = Math.min(15_000, 500 * 2 ** attempt);
    let delay = base / 2 + Math.random() * (base / 2);
    if (code === 1013) delay = Math.max(delay, 5_000);
    attempt += 1;
    const due = Date.now() + delay;
    const show = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      pill(socketPill, "closed", `Mất kết nối${code ? ` (${code})` : ""}: thử lại sau ${left}s`);
    };
    show();
    setTitle(socketPill, `${why} · /ws/market`);
    clearInterval(countdown);
    countdown = setInterval(show, 500);
    retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (socket) return;
    attempt = 0;
    connect();
  }

  // A half-open TCP connection never fires close: the heartbeat's absence does.
  setInterval(() => {
    if (socket && socket.readyState === WebSocket.OPEN && Date.now() - lastRx > STALE_MS) {
      const dead = socket;
      socket = null;
      dead.onclose = null;
      dead.close();
      setFeed(null);
      retry(0, "không nhận được dữ liệu");
    }
  }, 5_000);
  window.addEventListener("online", reconnectNow);

  connect();
})();
