"""Policy simulation: a population of past claims settled under a baseline and a reform by the engine's
batch path, compared, and reported."""
