"""anole host side: IVF-PQ numerics, index tooling, backends, memory node, coordinator, CLI."""
