"""External clouds: the provider protocol, its adapters (simulated, AWS), the price
catalog and the choice of offers (issue #15)."""
