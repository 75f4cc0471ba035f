"""Ring 1: pure value types, geometry and errors shared by every other package."""
