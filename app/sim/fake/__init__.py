"""The fake SSI FastConnect Data server: ``server`` (pump, app), ``rest``, ``signalr``, ``faults``."""
from app.sim.fake.channels import parse_channels
from app.sim.fake.server import FakeFastConnect, create_fake_app, serve_fake
from app.sim.fake.stats import FakeStats, frames_digest

__all__ = ["FakeFastConnect", "FakeStats", "create_fake_app", "frames_digest", "serve_fake", "parse_channels"]
