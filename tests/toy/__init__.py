"""A toy third detector kind, added the way a user adds one (docs/design.md#adding-a-detector):
its geometry (:mod:`toy.geometry`) and its readout (:mod:`toy.readout`), one registry line each,
and nothing changed inside gnnu."""
