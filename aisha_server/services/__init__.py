"""Domain services: the rules of the product, free of HTTP.  They raise domain errors."""
