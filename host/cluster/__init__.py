"""`anole cluster`: anole servers as Ray actors placed by resources, and the distributed index build."""
