"""The download front: files by SHA-256, from the best location that holds them."""
