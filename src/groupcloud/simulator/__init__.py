"""Simulations that drive the server's own engines (placement index, filters, scorers and
policies) without a database: trace loading and the packing experiment of the ATC'23
paper ("Beware of Fragmentation")."""
