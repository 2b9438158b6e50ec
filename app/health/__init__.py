"""How the console and each target are doing: component checks, each target's status, metrics."""
