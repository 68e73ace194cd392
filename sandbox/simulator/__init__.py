"""The storage-replication simulator: plays the replication controllers of all four backends on the lab clusters."""
