"""What the engine rooms and the bridge share: run shapes, rendered files, strict schema checks."""
