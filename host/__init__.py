"""anole's host side, one subpackage per job, imports in one direction (README "Architecture"):
spec (the contract) <- net (transport) <- index <- board <- backends <- serve <- ralm <- rago <- cli."""
