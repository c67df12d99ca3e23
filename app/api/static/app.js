/* stock-tracker dashboard: a trader's screen over the REST routes and /ws.
 *
 * Where the numbers come from: live, one /ws socket carries subscriptions to the board
 * group on screen (and the futures rows), the indices, the foreign summary, the
 * derivatives card, and the open symbol's candles and time and sales: a snapshot each,
 * then only what changed, merged here. What /ws does not carry (index candles, foreign
 * flow per minute, the basis line) is re-fetched, throttled, when the pushes say it
 * changed: nothing is asked while the market is quiet (lunch, after the close). An
 * earlier session (the picker) is fetched once with ?date= over REST; live updates are
 * then only kept, not shown.
 *
 * The charts are our own SVG: no charting library to vendor or load from a CDN
 * (deployments may be offline), and candles with volume, bars and a line take a few
 * hundred lines here.
 *
 * Every element a test (or a curious trader with devtools) may read carries
 * data-field="<schema field>" and data-value="<raw number>", next to the formatted text. */
"use strict";

(() => {
  // Futures contracts (legacy VN30F2612 and KRX 41I1GC000 codes) are not VN30 stocks.
  const FUTURES = /^(VN30F|41I1)/;
  const INDEX_ORDER = ["VN30", "VNINDEX", "HNXIndex", "HNX30", "HNXUpcomIndex"];
  // HOSE continuous session minutes with the lunch break folded out, so intraday
  // charts read like the trading day rather than the wall clock.
  const MORNING = [9 * 60, 11 * 60 + 30];
  const AFTERNOON = [13 * 60, 14 * 60 + 45];
  const DAY_MINUTES = (MORNING[1] - MORNING[0]) + (AFTERNOON[1] - AFTERNOON[0]);
  const RATIO_UP = 0.55;
  const RATIO_DOWN = 0.45;
  // Twice the server heartbeat and a half: longer silence means a dead socket.
  const STALE_MS = 75_000;
  // Re-fetch bounds. The board is what a trader watches tick by tick, but pushes come
  // every WS_THROTTLE_MS (100 ms) and a board answer is the whole market: a few a second
  // is as fast as anyone reads. Per-minute charts cannot change meaningfully faster.
  const BOARD_MS = 400;
  const DETAIL_MS = 1_000;
  const CHART_MS = 2_000;
  const TAPE_LIMIT = 60;
  const INTERVALS = ["1m", "5m", "15m", "30m", "1h", "1d"];

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

  /** VND in tỷ (10^9) or triệu (10^6): a column of raw VND is unreadable. */
  function fmtVnd(v) {
    if (!isNum(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e9) return nf2.format(v / 1e9) + " tỷ";
    if (a >= 1e6) return nf1.format(v / 1e6) + " tr";
    return nf0.format(v);
  }

  const isDer = (row) => row.exchange === "DER" || FUTURES.test(row.symbol || "");

  /** Stock prices in thousand VND (27,500 -> 27.50), as every Vietnamese board shows
   * them; futures in index points to one decimal. 0 is "no price yet". */
  function fmtPrice(v, der) {
    if (!isNum(v) || v === 0) return "—";
    return der ? nf1.format(v) : nf2.format(v / 1000);
  }

  function fmtChange(v, der) {
    if (!isNum(v)) return "—";
    return (v > 0 ? "+" : "") + (der ? nf1.format(v) : nf2.format(v / 1000));
  }

  const fmtSignedPct = (v) => (isNum(v) ? (v > 0 ? "+" : "") + nf2.format(v) + " %" : "—");

  /** "2026-11-25T11:16:40+07:00" -> "11:16:40": times are already in market time. */
  function fmtTime(iso) {
    return typeof iso === "string" && iso.length >= 19 ? iso.slice(11, 19) : "—";
  }

  const fmtDate = (date) => (date ? date.split("-").reverse().join("/") : "—");

  const signClass = (v) => (!isNum(v) ? "" : v > 0 ? "up" : v < 0 ? "down" : "ref");

  function ratioClass(r) {
    if (!isNum(r)) return "";
    return r > RATIO_UP ? "up" : r < RATIO_DOWN ? "down" : "ref";
  }

  /** Board colour of any price of a row: ceiling purple, floor cyan, reference
   * yellow, above it green, below it red. */
  function priceClass(p, row) {
    if (!isNum(p) || p <= 0) return "";
    if (row.ceiling > 0 && p >= row.ceiling) return "ceil";
    if (row.floor > 0 && p <= row.floor) return "floor";
    if (row.ref_price > 0) return p > row.ref_price ? "up" : p < row.ref_price ? "down" : "ref";
    return "";
  }

  const lastClass = (row) => priceClass(row.last_price, row) || signClass(row.change);

  const COLOUR_CLASSES = ["up", "down", "ref", "ceil", "floor"];

  /** Write one cell; touches the DOM only when the raw value changed. */
  function setField(el, raw, text, colour, flash) {
    if (!el) return false;
    const key = raw === null || raw === undefined ? "" : String(raw);
    // A book volume keeps its number while its price, and so its colour, moves.
    const sameColour = colour === undefined || COLOUR_CLASSES.every((c) => (c === colour) === el.classList.contains(c));
    if (el.dataset.value === key && el.textContent === text && sameColour) return false;
    const before = el.dataset.value;
    el.dataset.value = key;
    writeText(el, text);
    if (colour !== undefined) {
      for (const c of COLOUR_CLASSES) el.classList.toggle(c, c === colour);
    }
    if (flash && before !== "" && before !== undefined && before !== key && isNum(raw)) flashCell(el, raw > Number(before));
    return true;
  }

  /** Text of a cell that may hold a flash overlay, which must survive the write. */
  function writeText(node, text) {
    const fx = node.lastElementChild;
    if (!fx || !fx.classList.contains("fx")) {
      if (node.textContent !== text) node.textContent = text;
    } else if (node.firstChild.nodeType === Node.TEXT_NODE) node.firstChild.data = text;
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
  function setScale(node, fraction, axis = "X") {
    const css = `scale${axis}(${fraction})`;
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

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
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

  const stored = {
    get(key, fallback) {
      try {
        return localStorage.getItem("stock-tracker." + key) ?? fallback;
      } catch {
        return fallback; // storage off (private mode, policy): choices just do not persist
      }
    },
    set(key, value) {
      try {
        localStorage.setItem("stock-tracker." + key, value);
      } catch {
        /* as above */
      }
    },
  };

  // ---- which session is shown, and fetching it ---------------------------------------

  const params = new URLSearchParams(location.search);
  const askedDate = params.get("date");

  // ---- the credential ----------------------------------------------------------------

  // A token given in the page's address (?token=) is taken out of it at once: an address
  // ends up in history, bookmarks, screenshots and logs. It lives on in this tab's
  // sessionStorage, so a reload keeps it, and goes to the node only as
  // "Authorization: Bearer" on REST and as the first message on /ws.
  const TOKEN_KEY = "stock-tracker.token";
  const token = (() => {
    const url = new URL(location.href);
    const given = url.searchParams.get("token");
    if (given !== null) {
      url.searchParams.delete("token");
      history.replaceState(history.state, "", url);
      try {
        if (given) sessionStorage.setItem(TOKEN_KEY, given);
        else sessionStorage.removeItem(TOKEN_KEY); // "?token=" forgets the one kept
      } catch {
        /* storage off: the token lasts as long as the page */
      }
      return given || null;
    }
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  })();

  /** GET a route of the node, with the token when the page has one. */
  function nodeGet(url) {
    const headers = token !== null ? { Authorization: `Bearer ${token}` } : {};
    return fetch(url, { cache: "no-store", headers });
  }

  // date null: the live session. gen changes with it, so an answer that was asked for
  // before a switch is dropped rather than painted over the other day.
  const view = { date: /^\d{4}-\d{2}-\d{2}$/.test(askedDate || "") ? askedDate : null, gen: 0 };

  /** GET a JSON route of the shown session; null when it failed or is no longer wanted. */
  async function api(path, query = {}) {
    const gen = view.gen;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    if (view.date) q.set("date", view.date);
    const qs = q.toString();
    try {
      const res = await nodeGet(qs ? `${path}?${qs}` : path);
      if (!res.ok) return null;
      const body = await res.json();
      return gen === view.gen ? body : null;
    } catch {
      return null; // the node is away: the socket's reconnect brings the next push
    }
  }

  /** A fetch-and-draw that runs at most once per interval, never twice at once, and
   * always once more after the last kick (trailing edge), so the newest state shows.
   * A slow answer widens the interval: a big board on a slow link is not piled up. */
  function throttled(fn, minMs) {
    let last = 0;
    let gap = minMs;
    let timer = null;
    let busy = false;
    let again = false;
    let urgent = false;
    async function run() {
      timer = null;
      busy = true;
      const started = performance.now();
      last = started;
      try {
        await fn();
      } finally {
        busy = false;
        gap = Math.max(minMs, 2 * (performance.now() - started));
        if (again) {
          const now = urgent;
          again = urgent = false;
          kick(now);
        }
      }
    }
    function kick(now = false) {
      if (busy) {
        again = true;
        urgent = urgent || now;
        return;
      }
      if (timer !== null) {
        if (!now) return;
        clearTimeout(timer);
      }
      timer = setTimeout(run, now ? 0 : Math.max(0, last + gap - performance.now()));
    }
    return kick;
  }

  // ---- price board ---------------------------------------------------------------------

  const BID_LEVELS = [3, 2, 1]; // shown best-last, so the best bid sits next to the price
  const ASK_LEVELS = [1, 2, 3];

  const board = {
    body: $("#board-body"),
    total: fieldsOf($("#board-total")),
    rows: new Map(), // symbol -> {tr, f: fields, data: BoardRow}
    group: stored.get("group", ""),
    sortKey: "symbol",
    sortDir: 1,
  };

  function boardRow(symbol) {
    const num = (field, extra = "") => el("td", { class: `num ${extra}`.trim(), "data-field": field, "data-value": "" });
    const bar = (side, field) =>
      el("td", { class: `num bar-cell ${side}`, "data-field": field, "data-value": "" }, [
        el("span", { class: "bar" }),
        el("span", { class: "n", text: "—" }),
      ]);
    const cells = [
      el("th", { class: "sym", scope: "row" }, [
        el("button", { type: "button", class: "sym-btn", text: symbol, title: `${symbol}: biểu đồ và khớp lệnh` }),
      ]),
      num("ref_price", "ref"),
      num("ceiling", "ceil"),
      num("floor", "floor"),
    ];
    for (const i of BID_LEVELS) cells.push(num(`bid${i}_price`, "book"), num(`bid${i}_volume`, "book vol"));
    cells.push(num("last_price", "match strong"), num("last_volume", "match"), num("change", "match"), num("change_pct", "match"));
    for (const i of ASK_LEVELS) cells.push(num(`ask${i}_price`, "book"), num(`ask${i}_volume`, "book vol"));
    cells.push(num("high", "hl"), num("low", "hl"), num("total_volume"), num("market_volume"));
    cells.push(bar("buy", "mua_chu_dong_volume"), bar("sell", "ban_chu_dong_volume"), num("buy_ratio", "ratio"));
    const tr = el("tr", { "data-symbol": symbol }, cells);
    return { tr, sym: cells[0], f: fieldsOf(tr), data: null };
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

  function fillRow(row, r, flash) {
    const f = row.f;
    const der = isDer(r);
    const pc = lastClass(r);
    const price = (node, v) => setField(node, v || "", fmtPrice(v, der), priceClass(v, r));
    setField(f.ref_price, r.ref_price || "", fmtPrice(r.ref_price, der));
    setField(f.ceiling, r.ceiling || "", fmtPrice(r.ceiling, der));
    setField(f.floor, r.floor || "", fmtPrice(r.floor, der));
    for (const [side, levels] of [["bid", BID_LEVELS], ["ask", ASK_LEVELS]]) {
      for (const i of levels) {
        const [p, v] = (r[side] || [])[i - 1] || [null, null];
        price(f[`${side}${i}_price`], p);
        // A level's volume takes its price's colour, as on the exchange boards.
        setField(f[`${side}${i}_volume`], v ?? "", isNum(v) && v > 0 ? fmtInt(v) : "—", priceClass(p, r));
      }
    }
    setField(f.last_price, r.last_price || "", fmtPrice(r.last_price, der), pc, flash);
    setField(f.last_volume, r.last_volume || "", r.last_volume ? fmtInt(r.last_volume) : "—", pc);
    setField(f.change, r.change ?? "", fmtChange(r.change, der), pc);
    // The header says "%": no unit in the cell keeps the board narrow.
    setField(f.change_pct, r.change_pct ?? "", fmtSignedPct(r.change_pct).replace(" %", ""), pc);
    price(f.high, r.high);
    price(f.low, r.low);
    setField(f.total_volume, r.total_volume, fmtInt(r.total_volume), undefined, flash);
    setField(f.market_volume, r.market_volume, fmtInt(r.market_volume));
    setBar(f.mua_chu_dong_volume, r.mua_chu_dong_volume, flash);
    setBar(f.ban_chu_dong_volume, r.ban_chu_dong_volume, flash);
    setField(f.buy_ratio, r.buy_ratio ?? "", fmtPct(r.buy_ratio), ratioClass(r.buy_ratio));
    setTitle(f.total_volume, `mua CĐ ${fmtInt(r.mua_chu_dong_volume)} + bán CĐ ${fmtInt(r.ban_chu_dong_volume)} + trung tính ${fmtInt(r.neutral_volume)}`);
    setTitle(f.buy_ratio, isNum(r.side_agreement) ? `khớp với bên của SSI: ${fmtPct(r.side_agreement)}` : "");
    const cls = "sym " + pc;
    if (row.sym.className !== cls.trim()) row.sym.className = cls.trim();
  }

  function renderBoard(data) {
    renderSession(data.session);
    const all = Object.values(data.rows || {});
    // "All" means stocks: futures have their own group and card.
    const rows = board.group === "" ? all.filter((r) => !isDer(r)) : all;
    const seen = new Set();
    let maxVol = 0;
    const sum = { t: 0, m: 0, b: 0, s: 0 };
    for (const r of rows) {
      seen.add(r.symbol);
      let row = board.rows.get(r.symbol);
      const fresh = !row;
      if (fresh) {
        row = boardRow(r.symbol);
        board.rows.set(r.symbol, row);
      }
      row.data = r;
      fillRow(row, r, !fresh);
      maxVol = Math.max(maxVol, r.mua_chu_dong_volume || 0, r.ban_chu_dong_volume || 0);
      sum.t += r.total_volume || 0;
      sum.m += r.market_volume || 0;
      sum.b += r.mua_chu_dong_volume || 0;
      sum.s += r.ban_chu_dong_volume || 0;
    }
    for (const [symbol, row] of board.rows) {
      if (!seen.has(symbol)) {
        row.tr.remove();
        board.rows.delete(symbol);
      }
    }
    // Bars share one scale so a glance down the column compares symbols.
    for (const row of board.rows.values()) {
      sizeBar(row.f.mua_chu_dong_volume, maxVol);
      sizeBar(row.f.ban_chu_dong_volume, maxVol);
    }
    orderBoard();
    const t = board.total;
    const ratio = sum.b + sum.s > 0 ? sum.b / (sum.b + sum.s) : null;
    setField(t.total_volume, sum.t, fmtInt(sum.t));
    setField(t.market_volume, sum.m, fmtInt(sum.m));
    setField(t.mua_chu_dong_volume, sum.b, fmtInt(sum.b));
    setField(t.ban_chu_dong_volume, sum.s, fmtInt(sum.s));
    setField(t.buy_ratio, ratio ?? "", fmtPct(ratio), ratioClass(ratio));
    const count = $("#board-count");
    if (count.textContent !== `${rows.length} mã`) count.textContent = `${rows.length} mã`;

    if (!detail.sym && rows.length) selectSymbol([...board.body.querySelectorAll("tr[data-symbol]")][0].dataset.symbol);
    else markSelected();
    renderDetailHead();
  }

  // A price of 0 is "none yet"; a change or a volume of 0 is a real value.
  const ZERO_IS_NONE = new Set(["ref_price", "ceiling", "floor", "last_price", "last_volume", "high", "low"]);

  function orderBoard() {
    const key = board.sortKey;
    const dir = board.sortDir;
    const none = (v) => v === null || v === undefined || (v === 0 && ZERO_IS_NONE.has(key));
    const rows = [...board.rows.values()].sort((a, b) => {
      const x = a.data[key];
      const y = b.data[key];
      if (x === y || (none(x) && none(y))) return a.data.symbol < b.data.symbol ? -1 : 1;
      // Unknown values go last whichever way the column sorts.
      if (none(x)) return 1;
      if (none(y)) return -1;
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
    th.tabIndex = 0;
    const sort = () => {
      const key = th.dataset.sort;
      if (board.sortKey === key) board.sortDir = -board.sortDir;
      else {
        board.sortKey = key;
        board.sortDir = key === "symbol" ? 1 : -1; // numbers: biggest first
      }
      for (const other of document.querySelectorAll("#board thead th")) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", board.sortDir > 0 ? "ascending" : "descending");
      orderBoard();
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        sort();
      }
    });
  }

  board.body.addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr[data-symbol]");
    if (tr) selectSymbol(tr.dataset.symbol);
  });

  const groupPicker = $("#board-group");
  if (![...groupPicker.options].some((o) => o.value === board.group)) board.group = "";
  groupPicker.value = board.group;
  groupPicker.addEventListener("change", () => {
    board.group = groupPicker.value;
    stored.set("group", board.group);
    if (view.date) kickBoard(true);
    else subscribeBoard();
  });

  const kickBoard = throttled(async () => {
    const data = await api("/api/market/board", { symbols: board.group });
    if (data) renderBoard(data);
  }, BOARD_MS);

  function renderSession(ref) {
    const date = ref ? ref.date : "";
    setField($("#session-date"), date, fmtDate(date));
    $("#session-closed").hidden = !(ref && ref.closed);
    if (date && !view.date && date !== sessions.current) loadSessions(); // a new day has begun
  }

  // ---- own SVG charts ------------------------------------------------------------------

  // Price labels on the right, as trading charts have them; time labels underneath.
  const PAD = { l: 6, r: 58, t: 8, b: 18 };
  const charts = new Map(); // svg element -> redraw(), for resizes

  const resize = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const redraw = charts.get(entry.target);
      if (redraw) redraw();
    }
  });

  /** Keep a chart's drawing so a resize can redraw it at the new width. */
  function keep(node, redraw) {
    if (!charts.has(node)) resize.observe(node);
    charts.set(node, redraw);
    redraw();
  }

  /** The drawing area at the element's pixel size, so text stays crisp at any width. */
  function canvas(node) {
    const w = Math.round(node.clientWidth);
    const h = Math.round(node.clientHeight);
    node.setAttribute("viewBox", `0 0 ${Math.max(w, 1)} ${Math.max(h, 1)}`);
    node.replaceChildren();
    return { w, h, ok: w > 40 && h > 40 };
  }

  function yScale(lo, hi, top, bottom) {
    const span = hi - lo || Math.max(Math.abs(hi) * 0.002, 1);
    const l = hi - lo ? lo : lo - span / 2;
    return (v) => bottom - ((v - l) / span) * (bottom - top);
  }

  const px = (v) => v.toFixed(1);

  function emptyNote(node, w, h, text) {
    node.append(svg("text", { class: "axis note", x: px(w / 2), y: px(h / 2), "text-anchor": "middle" }, text));
  }

  function hLine(g, y, x1, x2, cls) {
    g.append(svg("line", { class: cls, x1: px(x1), x2: px(x2), y1: px(y), y2: px(y) }));
  }

  function rightLabels(g, w, lo, hi, y, fmt) {
    // The top label hangs below its line and the bottom one sits above it, so neither
    // runs into the pane above or below.
    for (const [v, dy] of [[hi, 10], [(hi + lo) / 2, 4], [lo, -3]]) {
      hLine(g, y(v), PAD.l, w - PAD.r, "grid");
      g.append(svg("text", { class: "axis", x: px(w - PAD.r + 4), y: px(y(v) + dy) }, fmt(v)));
    }
  }

  /** A tag on the right axis at the last value, coloured like it. */
  function lastTag(g, w, y, text, cls) {
    const tag = svg("g", { class: "tag " + cls });
    tag.append(svg("rect", { x: px(w - PAD.r + 1), y: px(y - 8), width: String(PAD.r - 2), height: "16", rx: "2" }));
    tag.append(svg("text", { x: px(w - PAD.r + 4), y: px(y + 4) }, text));
    g.append(tag);
  }

  /** Session minute (lunch folded out) of an ISO time, 0..DAY_MINUTES. */
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

  const SESSION_TICKS = ["09:00", "10:00", "11:00", "13:00", "14:00"];

  /** X placement: by the day's clock (market-wide series, so gaps show as gaps), or one
   * slot per bar (a symbol's candles at any interval). */
  function xAxis(w, h, items, mode) {
    const plot = w - PAD.l - PAD.r;
    let step;
    let at;
    const ticks = [];
    if (mode === "session") {
      step = plot / (DAY_MINUTES + 1);
      at = (item) => PAD.l + step * (sessionMinute(item.time) + 0.5);
      for (const t of SESSION_TICKS) ticks.push([PAD.l + step * (sessionMinute(`T${t}`) + 0.5), t]);
    } else {
      step = plot / Math.max(items.length, 24); // a handful of bars do not become slabs
      const index = new Map(items.map((item, i) => [item, i]));
      at = (item) => PAD.l + step * (index.get(item) + 0.5);
      const daily = mode === "1d";
      const every = Math.max(1, Math.ceil(items.length / Math.max(2, Math.floor(plot / 70))));
      for (let i = 0; i < items.length; i += every) {
        const t = items[i].time || "";
        ticks.push([at(items[i]), daily ? fmtDate(t.slice(0, 10)).slice(0, 5) : t.slice(11, 16)]);
      }
    }
    return { step, at, ticks, base: h - PAD.b };
  }

  function timeLabels(g, x, h) {
    let lastEnd = -Infinity;
    for (const [pos, text] of x.ticks) {
      if (pos - 16 < lastEnd) continue; // no overlapping labels on a narrow screen
      const edge = pos < PAD.l + 16; // the first label starts at the edge rather than being cut
      g.append(svg("text", { class: "axis", x: px(edge ? PAD.l : pos), y: px(h - 4), "text-anchor": edge ? "start" : "middle" }, text));
      lastEnd = edge ? PAD.l + 32 : pos + 16;
    }
  }

  /**
   * Candles over a volume pane. opts: ref (dashed reference line), fmt (price labels),
   * mode ("session" | interval), volume(item) -> [[value, class], ...] stacked bars.
   */
  function drawCandles(node, items, opts) {
    node.dataset.value = String(items.length);
    keep(node, () => {
      const { w, h, ok } = canvas(node);
      if (!ok) return;
      if (!items.length) {
        emptyNote(node, w, h, "Chưa có dữ liệu (no data yet)");
        return;
      }
      const x = xAxis(w, h, items, opts.mode);
      const priceBottom = PAD.t + (x.base - PAD.t) * 0.7;
      const volTop = priceBottom + 8;
      let lo = Infinity;
      let hi = -Infinity;
      for (const c of items) {
        lo = Math.min(lo, c.low);
        hi = Math.max(hi, c.high);
      }
      const ref = isNum(opts.ref) && opts.ref > 0 ? opts.ref : null;
      // The reference joins the range only when near it: far off it would flatten the day.
      if (ref && ref >= lo - (hi - lo) && ref <= hi + (hi - lo)) {
        lo = Math.min(lo, ref);
        hi = Math.max(hi, ref);
      }
      const y = yScale(lo, hi, PAD.t, priceBottom);
      const g = svg("g");
      rightLabels(g, w, lo, hi, y, opts.fmt);
      if (ref && ref >= lo && ref <= hi) hLine(g, y(ref), PAD.l, w - PAD.r, "refline");
      const body = Math.max(1, Math.min(x.step * 0.7, 14));
      let maxVol = 0;
      const vols = items.map((c) => {
        const parts = opts.volume(c);
        maxVol = Math.max(maxVol, parts.reduce((s, [v]) => s + v, 0));
        return parts;
      });
      const vy = (v) => x.base - (maxVol > 0 ? (v / maxVol) * (x.base - volTop) : 0);
      items.forEach((c, i) => {
        const cx = x.at(c);
        const cls = c.close > c.open ? "up" : c.close < c.open ? "down" : "ref";
        const bar = svg("g", { class: "candle " + cls });
        bar.append(svg("title", {}, opts.title(c)));
        bar.append(svg("line", { class: "wick", x1: px(cx), x2: px(cx), y1: px(y(c.high)), y2: px(y(c.low)) }));
        const top = y(Math.max(c.open, c.close));
        const height = Math.max(1, y(Math.min(c.open, c.close)) - top);
        bar.append(svg("rect", { class: "body", x: px(cx - body / 2), y: px(top), width: px(body), height: px(height) }));
        let acc = 0;
        for (const [v, vcls] of vols[i]) {
          if (v <= 0) continue;
          const y0 = vy(acc);
          acc += v;
          bar.append(svg("rect", { class: "vol " + vcls, x: px(cx - body / 2), y: px(vy(acc)), width: px(body), height: px(Math.max(0.5, y0 - vy(acc))) }));
        }
        g.append(bar);
      });
      hLine(g, x.base, PAD.l, w - PAD.r, "axis-line");
      if (maxVol > 0) g.append(svg("text", { class: "axis", x: px(w - PAD.r + 4), y: px(volTop + 12) }, fmtInt(maxVol)));
      timeLabels(g, x, h);
      const last = items[items.length - 1];
      lastTag(g, w, y(last.close), opts.fmt(last.close), opts.lastClass ? opts.lastClass(last.close) : "ref");
      node.append(g);
    });
  }

  /** Per-minute bars around zero and, optionally, a line on its own scale. */
  function drawBarsAndLine(node, items, opts) {
    node.dataset.value = String(items.length);
    keep(node, () => {
      const { w, h, ok } = canvas(node);
      if (!ok) return;
      if (!items.length) {
        emptyNote(node, w, h, "Chưa có dữ liệu (no data yet)");
        return;
      }
      const x = xAxis(w, h, items, "session");
      const g = svg("g");
      const bars = opts.bar ? items.map(opts.bar) : [];
      const line = opts.line ? items.map(opts.line) : [];
      const range = (vals) => [Math.min(0, ...vals), Math.max(0, ...vals)];
      const [blo, bhi] = range(bars.length ? bars : line);
      const yb = yScale(blo, bhi, PAD.t, x.base);
      rightLabels(g, w, blo, bhi, yb, opts.fmt);
      hLine(g, yb(0), PAD.l, w - PAD.r, "zero");
      const width = Math.max(1, x.step * 0.8);
      items.forEach((item, i) => {
        if (!bars.length) return;
        const v = bars[i];
        const top = Math.min(yb(v), yb(0));
        g.append(svg("rect", {
          class: "bar " + (v >= 0 ? "up" : "down"), x: px(x.at(item) - width / 2), y: px(top),
          width: px(width), height: px(Math.max(0.5, Math.abs(yb(v) - yb(0)))),
        }, undefined));
      });
      if (line.length) {
        const [llo, lhi] = bars.length ? range(line) : [blo, bhi];
        const yl = bars.length ? yScale(llo, lhi, PAD.t, x.base) : yb;
        const pts = items.map((item, i) => `${px(x.at(item))},${px(yl(line[i]))}`);
        if (pts.length === 1) pts.unshift(`${px(PAD.l)},${pts[0].split(",")[1]}`);
        const last = line[line.length - 1];
        g.append(svg("polyline", { class: "series " + (opts.lineClass || signClass(last)), points: pts.join(" ") }));
        // On its own scale, the line's value is written out rather than put on the bars' axis.
        if (bars.length) g.append(svg("text", { class: "axis legend-value", x: px(PAD.l + 4), y: px(PAD.t + 10) }, `${opts.lineName}: ${opts.fmtLine(last)}`));
        else lastTag(g, w, yl(last), opts.fmtLine(last), signClass(last));
      }
      timeLabels(g, x, h);
      node.append(g);
    });
  }

  // ---- the picked symbol: candles and time and sales ------------------------------------

  const detail = {
    card: $("#detail"),
    head: fieldsOf($("#detail .detail-title")),
    title: $("#detail-symbol"),
    chart: $("#candle-chart"),
    tape: $("#tape"),
    sym: null,
    interval: stored.get("interval", "1m"),
  };
  if (!INTERVALS.includes(detail.interval)) detail.interval = "1m";
  const wantedSymbol = stored.get("symbol", "");

  function markSelected() {
    for (const row of board.rows.values()) row.tr.classList.toggle("selected", row.data.symbol === detail.sym);
  }

  function selectSymbol(sym) {
    if (!sym || sym === detail.sym) return;
    detail.sym = sym;
    detail.card.dataset.symbol = sym;
    stored.set("symbol", sym);
    setField(detail.title, sym, sym);
    markSelected();
    renderDetailHead();
    detailChanged();
  }

  function renderDetailHead() {
    const row = board.rows.get(detail.sym);
    const r = row ? row.data : null;
    const f = detail.head;
    if (!r) {
      for (const name of ["last_price", "change", "change_pct"]) setField(f[name], "", "", "");
      return;
    }
    const der = isDer(r);
    const pc = lastClass(r);
    setField(f.last_price, r.last_price || "", fmtPrice(r.last_price, der), pc);
    setField(f.change, r.change ?? "", fmtChange(r.change, der), pc);
    setField(f.change_pct, r.change_pct ?? "", fmtSignedPct(r.change_pct), pc);
  }

  for (const button of document.querySelectorAll("#intervals [data-interval]")) {
    button.setAttribute("aria-pressed", String(button.dataset.interval === detail.interval));
    button.addEventListener("click", () => {
      detail.interval = button.dataset.interval;
      stored.set("interval", detail.interval);
      for (const b of document.querySelectorAll("#intervals [data-interval]")) {
        b.setAttribute("aria-pressed", String(b === button));
      }
      detailChanged();
    });
  }

  const kickDetail = throttled(async () => {
    const sym = detail.sym;
    const interval = detail.interval;
    if (!sym) return;
    const path = encodeURIComponent(sym);
    const [candles, trades] = await Promise.all([
      api(`/api/history/candles/${path}`, { interval }),
      api(`/api/market/trades/${path}`, { limit: TAPE_LIMIT }),
    ]);
    // A newer pick owns the panel; its own fetch is already queued.
    if (sym !== detail.sym || interval !== detail.interval) return;
    if (candles) drawSymbolCandles(sym, interval, candles.candles || []);
    if (trades) renderTape(trades.trades || []);
  }, DETAIL_MS);

  function drawSymbolCandles(sym, interval, candles) {
    const row = board.rows.get(sym);
    const r = row ? row.data : { symbol: sym };
    const der = isDer(r);
    detail.chart.dataset.symbol = sym;
    detail.chart.dataset.interval = interval;
    drawCandles(detail.chart, candles, {
      mode: interval,
      ref: r.ref_price,
      fmt: (v) => fmtPrice(v, der),
      lastClass: (v) => priceClass(v, r) || "ref",
      volume: (c) => [[c.buy_volume, "buy"], [c.sell_volume, "sell"], [c.neutral_volume, "neutral"]],
      title: (c) => `${interval === "1d" ? c.time.slice(0, 10) : c.time.slice(11, 16)}  O ${fmtPrice(c.open, der)}  H ${fmtPrice(c.high, der)}  ` +
        `L ${fmtPrice(c.low, der)}  C ${fmtPrice(c.close, der)}\nKL ${fmtInt(c.volume)} · mua CĐ ${fmtInt(c.buy_volume)} · ` +
        `bán CĐ ${fmtInt(c.sell_volume)} · trung tính ${fmtInt(c.neutral_volume)}`,
    });
  }

  const SIDES = {
    mua_chu_dong: ["M", "up", "Mua chủ động (active buy)"],
    ban_chu_dong: ["B", "down", "Bán chủ động (active sell)"],
    neutral: ["—", "muted", "Trung tính (neutral)"],
  };

  function renderTape(trades) {
    const row = board.rows.get(detail.sym);
    const r = row ? row.data : { symbol: detail.sym || "" };
    const der = isDer(r);
    const body = detail.tape.tBodies[0];
    const frag = document.createDocumentFragment();
    for (const t of trades) {
      const [mark, cls, title] = SIDES[t.side] || SIDES.neutral;
      frag.append(el("tr", { class: "side-" + cls, "data-side": t.side }, [
        el("th", { class: "sym time", text: fmtTime(t.time) }),
        el("td", { class: "num " + priceClass(t.price, r), "data-field": "price", "data-value": String(t.price), text: fmtPrice(t.price, der) }),
        el("td", { class: "num", "data-field": "volume", "data-value": String(t.volume), text: fmtInt(t.volume) }),
        el("td", { class: "side " + cls, title: `${title}; SSI: ${t.ssi_side || "—"}`, text: mark }),
      ]));
    }
    if (!trades.length) frag.append(el("tr", { class: "empty-row" }, [el("td", { colspan: "4", text: "Chưa có giao dịch" })]));
    body.replaceChildren(frag);
    detail.tape.dataset.value = String(trades.length);
  }

  // ---- futures ---------------------------------------------------------------------

  const futures = { card: $("#futures"), f: fieldsOf($("#futures")), flow: new Map(), chart: $("#basis-chart"), sig: null };
  delete futures.f.basis_points; // the chart, not a text cell

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

  const kickBasis = throttled(async () => {
    const data = await api("/api/history/basis");
    if (!data) return;
    drawBarsAndLine(futures.chart, data.points || [], {
      line: (p) => p.basis,
      fmt: fmt2,
      fmtLine: (v) => signed(v, fmt2),
    });
  }, CHART_MS);

  // ---- foreign flow -------------------------------------------------------------------

  const foreign = { card: $("#foreign"), f: fieldsOf($("#foreign .totals")), top: {}, chart: $("#foreign-chart"), sig: null };

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

  const kickForeign = throttled(async () => {
    const data = await api("/api/history/foreign");
    if (!data) return;
    const minutes = data.minutes || [];
    let run = 0;
    const cumulative = new Map(minutes.map((m) => [m, (run += m.net_value)]));
    drawBarsAndLine(foreign.chart, minutes, {
      bar: (m) => m.net_value,
      line: (m) => cumulative.get(m),
      lineClass: "accent",
      lineName: "Lũy kế",
      fmt: fmtVnd,
      fmtLine: (v) => signed(v, fmtVnd),
    });
  }, CHART_MS);

  // ---- indices: the cards, and the picked index's candles with breadth -----------------

  const indices = { wrap: $("#indices"), cards: new Map(), all: {} };
  const SPARK_W = 300;
  const SPARK_H = 64;
  const GRID_TIMES = ["10:00", "11:00", "11:30", "14:00"];

  function indexCard(id) {
    const line = svg("polyline", { class: "line", "data-field": "intraday", "data-value": "0", points: "" });
    const ref = svg("line", { class: "refline", x1: "0", x2: String(SPARK_W), y1: "-10", y2: "-10" });
    const dot = svg("circle", { class: "last", r: "2.5", cx: "-10", cy: "-10" });
    const spark = svg("svg", { class: "spark", viewBox: `0 0 ${SPARK_W} ${SPARK_H}`, preserveAspectRatio: "none", role: "img" });
    spark.append(svg("title", {}, `${id} intraday, 09:00–14:45 (nghỉ trưa 11:30–13:00 lược bỏ)`));
    for (const t of GRID_TIMES) {
      const gx = ((sessionMinute(`T${t}`) / DAY_MINUTES) * SPARK_W).toFixed(1);
      spark.append(svg("line", { class: t === "11:30" ? "grid lunch" : "grid", x1: gx, x2: gx, y1: "0", y2: String(SPARK_H) }));
    }
    spark.append(ref, line, dot);
    const card = el("article", { class: "card index-card", "data-index": id, tabindex: "0", title: `${id}: xem nến` }, [
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
    const pick = () => selectIndex(id);
    card.addEventListener("click", pick);
    card.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        pick();
      }
    });
    return { card, f: fieldsOf(card), line, ref, dot, ratioLabel: card.querySelector(".ratio-label"), key: "" };
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
    indices.all = all || {};
    const ids = Object.keys(indices.all).sort((a, b) => {
      const ia = INDEX_ORDER.indexOf(a);
      const ib = INDEX_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
    });
    $("#indices-empty").hidden = ids.length > 0;
    let anchor = $("#indices-empty");
    for (const id of ids) {
      const d = indices.all[id];
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
      setTitle(c.card, `${id}: tham chiếu ${fmt2(d.prior_value)} · nhấn để xem nến`);
      drawSpark(c, d.intraday, d.prior_value, cls);
    }
    for (const [id, c] of indices.cards) {
      if (!(id in indices.all)) {
        c.card.remove();
        indices.cards.delete(id);
      }
    }
    renderIndexTabs(ids);
    if (!indexPanel.id || !(indexPanel.id in indices.all)) {
      if (ids.length) selectIndex(ids.includes("VN30") ? "VN30" : ids[0]);
    }
    renderIndexPanel();
  }

  const indexPanel = { card: $("#index-panel"), f: fieldsOf($("#index-panel")), tabs: $("#index-tabs"), chart: $("#index-chart"), id: "", sig: null };

  function renderIndexTabs(ids) {
    const have = [...indexPanel.tabs.children].map((b) => b.dataset.index).join();
    if (have !== ids.join()) {
      indexPanel.tabs.replaceChildren(...ids.map((id) => {
        const b = el("button", { type: "button", "data-index": id, "aria-pressed": "false", text: id });
        b.addEventListener("click", () => selectIndex(id));
        return b;
      }));
    }
    for (const b of indexPanel.tabs.children) b.setAttribute("aria-pressed", String(b.dataset.index === indexPanel.id));
  }

  function selectIndex(id) {
    if (id === indexPanel.id) return;
    indexPanel.id = id;
    indexPanel.card.dataset.index = id;
    for (const b of indexPanel.tabs.children) b.setAttribute("aria-pressed", String(b.dataset.index === id));
    for (const [cid, c] of indices.cards) c.card.classList.toggle("selected", cid === id);
    renderIndexPanel();
    kickIndex(true);
  }

  function renderIndexPanel() {
    const d = indices.all[indexPanel.id];
    const f = indexPanel.f;
    for (const [cid, c] of indices.cards) c.card.classList.toggle("selected", cid === indexPanel.id);
    if (!d) return;
    const cls = signClass(d.change);
    setField(f.value, d.value, fmt2(d.value), cls);
    setField(f.change, d.change, signed(d.change, fmt2), cls);
    setField(f.ratio_change, d.ratio_change, `(${signed(d.ratio_change, fmt2)} %)`, cls);
    setField(f.advances, d.advances, fmtInt(d.advances));
    setField(f.no_changes, d.no_changes, fmtInt(d.no_changes));
    setField(f.declines, d.declines, fmtInt(d.declines));
    const total = (d.advances || 0) + (d.no_changes || 0) + (d.declines || 0);
    const bar = $("#index-panel .breadth-bar");
    bar.style.setProperty("--adv", String(total ? d.advances / total : 0));
    bar.style.setProperty("--unch", String(total ? d.no_changes / total : 0));
    bar.style.setProperty("--dec", String(total ? d.declines / total : 0));
    bar.classList.toggle("none", total === 0);
  }

  const kickIndex = throttled(async () => {
    const id = indexPanel.id;
    if (!id) return;
    const data = await api(`/api/history/index/${encodeURIComponent(id)}`);
    if (!data || id !== indexPanel.id) return;
    const bars = data.candles || [];
    // total_volume is the index's running total: a bar's own volume is the step to it.
    const own = new Map(bars.map((c, i) => [c, i ? Math.max(0, c.total_volume - bars[i - 1].total_volume) : 0]));
    const prior = (indices.all[id] || {}).prior_value;
    drawCandles(indexPanel.chart, bars, {
      mode: "session",
      ref: prior,
      fmt: fmt2,
      lastClass: (v) => (isNum(prior) && prior > 0 ? signClass(v - prior) : "ref"),
      volume: (c) => [[own.get(c), "neutral"]],
      title: (c) => `${c.time.slice(11, 16)}  O ${fmt2(c.open)}  H ${fmt2(c.high)}  L ${fmt2(c.low)}  C ${fmt2(c.close)}\nKL ${fmtInt(own.get(c))}`,
    });
  }, CHART_MS);

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

  function renderHeader(latest) {
    const node = $("#last-update");
    if (node.dataset.value !== latest) {
      node.dataset.value = latest;
      node.textContent = latest ? fmtTime(latest) : "—";
    }
    setTitle(node, "nhận lúc " + new Date().toLocaleTimeString("vi-VN"));
  }

  /** The simulated market's clock is its newest live event time: it ticks with the
   * pushes, also while an earlier session is on screen. */
  function tickSim(latest) {
    if (sim.on && latest) setField(sim.clock, latest, fmtTime(latest));
  }

  const sig = (...parts) => parts.map((p) => (p === undefined || p === null ? "" : String(p))).join("|");

  /** Paint what the snapshot carries, then re-fetch only what it says has changed. */
  function render(snap) {
    renderHeader(latestTime(snap));
    renderIndices(snap.indices);
    renderFutures(snap.derivatives);
    renderFuturesFlow(Object.values(snap.quotes || {}).filter((s) => FUTURES.test(s.symbol)));
    renderForeign(snap.foreign);

    const idx = (snap.indices || {})[indexPanel.id];
    const isig = sig(indexPanel.id, idx && idx.last_updated, idx && idx.value);
    if (isig !== indexPanel.sig) {
      indexPanel.sig = isig;
      kickIndex();
    }
    const fo = snap.foreign || {};
    const fsig = sig(fo.total_buy_value, fo.total_sell_value);
    if (fsig !== foreign.sig) {
      foreign.sig = fsig;
      kickForeign();
    }
    const de = snap.derivatives || {};
    const bsig = sig(de.last_updated, de.basis);
    if (bsig !== futures.sig) {
      futures.sig = bsig;
      kickBasis();
    }
  }

  // ---- live state: what the /ws subscriptions hold ------------------------------------------

  const live = {
    on: false, // a first snapshot has come
    session: null,
    board: {}, // symbol -> BoardRow of the group on screen
    der: {}, // futures rows, for the futures card
    indices: {},
    foreign: null,
    derivatives: null,
    candles: new Map(), // time -> candle of the open symbol and interval
    trades: [], // the open symbol's, newest first
    detailFresh: false,
    subs: new Map(), // JSON of a key -> {key, role, seq}
  };

  /** The seed's snapshot shape, for the cards, from the live subscriptions. */
  function liveSnap() {
    return { quotes: { ...live.der, ...live.board }, indices: live.indices, foreign: live.foreign, derivatives: live.derivatives };
  }

  function apply(role, msg) {
    const d = msg.data;
    const fresh = msg.type === "snapshot";
    if (role === "board" || role === "der" || role === "indices") {
      live[role] = fresh ? d || {} : Object.assign(live[role], d);
    } else if (role === "foreign" || role === "derivatives") {
      live[role] = d;
    } else if (role === "candles") {
      if (fresh) live.candles = new Map();
      for (const c of d || []) live.candles.set(c.time, c);
      live.detailFresh = true;
    } else if (role === "trades") {
      // Trades come oldest first; the tape shows the newest on top.
      const add = [...(d || [])].reverse();
      live.trades = (fresh ? add : add.concat(live.trades)).slice(0, TAPE_LIMIT);
      live.detailFresh = true;
    }
  }

  function paintLive() {
    const snap = liveSnap();
    render(snap);
    renderBoard({ session: live.session, rows: live.board });
    if (live.detailFresh && detail.sym) {
      live.detailFresh = false;
      drawSymbolCandles(detail.sym, detail.interval, [...live.candles.keys()].sort().map((t) => live.candles.get(t)));
      renderTape(live.trades);
    }
  }

  // Messages can arrive faster than frames paint: paint once per frame.
  let frameRequested = false;
  function schedule() {
    tickSim(latestTime(liveSnap()));
    if (view.date) return; // an earlier day is on screen: live updates are only kept
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      if (!view.date) paintLive();
    });
  }

  // ---- the session picker: an earlier day, or live -------------------------------------------

  const sessions = { picker: $("#session-picker"), current: null, list: [], loading: null };

  async function loadSessions() {
    if (sessions.loading) return sessions.loading;
    sessions.loading = (async () => {
      try {
        const res = await nodeGet("/api/sessions");
        if (!res.ok) return;
        const data = await res.json();
        sessions.current = data.current;
        sessions.list = data.sessions || [];
        fillPicker();
      } catch {
        /* the list stays as it was; the picker is refreshed on next open */
      } finally {
        sessions.loading = null;
      }
    })();
    return sessions.loading;
  }

  function fillPicker() {
    const p = sessions.picker;
    const opts = [el("option", { value: "", text: `Trực tiếp${sessions.current ? " · " + fmtDate(sessions.current) : ""}` })];
    const dates = sessions.list.map((s) => s.date).filter((d) => d !== sessions.current);
    if (view.date && !dates.includes(view.date)) dates.unshift(view.date); // a deep link to a day not listed
    for (const date of dates) {
      const s = sessions.list.find((x) => x.date === date);
      const note = !s ? " · không có dữ liệu" : s.closed ? "" : " · chưa đóng";
      opts.push(el("option", { value: date, text: fmtDate(date) + note }));
    }
    const same = p.options.length === opts.length && opts.every((o, i) => p.options[i].value === o.value && p.options[i].text === o.text);
    if (!same) p.replaceChildren(...opts);
    p.value = view.date || "";
  }

  sessions.picker.addEventListener("change", () => showSession(sessions.picker.value || null));
  // The list grows by a day overnight: refresh it whenever someone opens it.
  sessions.picker.addEventListener("focus", () => loadSessions());
  $("#back-live").addEventListener("click", () => showSession(null));

  async function showSession(date) {
    view.date = date;
    view.gen += 1;
    const url = new URL(location.href);
    if (date) url.searchParams.set("date", date);
    else url.searchParams.delete("date");
    history.replaceState(null, "", url);
    document.body.classList.toggle("is-history", !!date);
    $("#history-bar").hidden = !date;
    setField($("#history-date"), date || "", fmtDate(date));
    fillPicker();
    // Forget what was last fetched: every panel is asked again for the shown day.
    indexPanel.sig = foreign.sig = futures.sig = null;
    if (date) {
      const gen = view.gen;
      const snap = await api("/api/market/snapshot");
      if (snap && gen === view.gen) render(snap);
      kickBoard(true);
      kickDetail(true);
    } else if (live.on) {
      live.detailFresh = true;
      paintLive();
    }
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
      const res = await nodeGet("/api/feed");
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
      if (live.on) tickSim(latestTime(liveSnap()));
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

  // Where the browser can inflate raw DEFLATE, the node sends each data message compressed
  // (about a seventh of the bytes of a board update; docs/ws.md, "Compression").
  const inflating = typeof DecompressionStream === "function";
  const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws${inflating ? "?compression=deflate" : ""}`;
  const inflate = (buf) =>
    new Response(new Blob([buf]).stream().pipeThrough(new DecompressionStream("deflate-raw"))).text();

  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let countdown = null;
  let lastRx = 0;
  let received = 0;

  function send(op, key) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ op, ...key }));
  }

  /** Subscribe ``key`` for ``role``, replacing the role's previous subscription. */
  function subscribe(role, key) {
    for (const [id, sub] of live.subs) {
      if (sub.role === role) {
        live.subs.delete(id);
        send("unsubscribe", sub.key);
      }
    }
    live.subs.set(JSON.stringify(key), { key, role, seq: -1 });
    send("subscribe", key);
  }

  function subscribeBoard() {
    live.board = {};
    subscribe("board", { channel: "board", symbols: board.group || "*" });
    // The futures card's rows: their own subscription unless the board shows them.
    const der = [...live.subs].find(([, sub]) => sub.role === "der");
    if (board.group === "DER" && der) {
      live.subs.delete(der[0]);
      send("unsubscribe", der[1].key);
      live.der = {};
    } else if (board.group !== "DER" && !der) subscribe("der", { channel: "board", symbols: "DER" });
  }

  function subscribeDetail() {
    live.candles = new Map();
    live.trades = [];
    live.detailFresh = true;
    if (!detail.sym) return;
    subscribe("candles", { channel: "candles", symbol: detail.sym, interval: detail.interval });
    subscribe("trades", { channel: "trades", symbol: detail.sym, limit: TAPE_LIMIT });
  }

  /** The open symbol or interval changed: live, new subscriptions; an earlier day, REST. */
  function detailChanged() {
    if (view.date) kickDetail(true);
    else subscribeDetail();
  }

  function subscribeAll() {
    live.subs.clear();
    subscribeBoard();
    for (const channel of ["indices", "foreign", "derivatives"]) subscribe(channel, { channel });
    subscribeDetail();
  }

  function onData(msg) {
    const id = JSON.stringify(msg.key);
    const sub = live.subs.get(id);
    if (!sub) return; // the last words of a subscription we replaced
    if (msg.type === "snapshot") sub.seq = 0;
    else if (msg.seq !== sub.seq + 1) {
      // A gap (we missed an update): a fresh snapshot puts it right.
      send("subscribe", sub.key);
      return;
    } else sub.seq = msg.seq;
    live.session = msg.session;
    live.on = true;
    apply(sub.role, msg);
    schedule();
  }

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
      // The token goes in the first message, never in the URL (which proxies log).
      if (token !== null) ws.send(JSON.stringify({ op: "auth", token }));
      subscribeAll();
      pill(socketPill, "open", "Kết nối: trực tuyến");
      loadFeed();
    };
    const onMessage = (text) => {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        return;
      }
      if (msg && msg.type === "status") {
        setFeed(msg.connected, msg.reason);
        loadFeed();
        return;
      }
      if (!msg || !msg.channel) return; // acknowledgements; errors are the page's own bugs
      attempt = 0; // reset only once data flows, so a socket that opens then drops keeps backing off
      // Messages received, shown or not: lets a reader (or a test) tell a paused page
      // from one that heard nothing.
      socketPill.dataset.rx = String((received += 1));
      onData(msg);
    };
    // Inflating is asynchronous: messages are handled one after another, in the order
    // they came, or an update could be applied before the snapshot it follows.
    let inOrder = Promise.resolve();
    ws.onmessage = (ev) => {
      lastRx = Date.now();
      // The heartbeat is the binary frame "ping" (a data message starts with byte 0); it
      // only proves the link is alive.
      if (typeof ev.data !== "string" && !(inflating && new Uint8Array(ev.data)[0] === 0)) return;
      inOrder = inOrder.then(async () => {
        let text = ev.data;
        try {
          if (typeof text !== "string") text = await inflate(text);
        } catch {
          return;
        }
        onMessage(text);
      });
    };
    // In the same order: what came before the close is shown before the page reconnects.
    ws.onclose = (ev) => {
      inOrder = inOrder.then(() => {
        if (socket !== ws) return;
        socket = null;
        setFeed(null); // the next connection tells us again
        retry(ev.code, ev.reason);
      });
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
    setTitle(socketPill, `${why} · /ws`);
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

  // ---- start ---------------------------------------------------------------------------------

  if (wantedSymbol) selectSymbol(wantedSymbol);
  loadSessions();
  // Live, the first snapshots (asked for on connect) fill the page; an earlier day is fetched now.
  if (view.date) showSession(view.date);
  connect();
})();
