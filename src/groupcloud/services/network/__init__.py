"""Networks: address space (supernets, VPCs, subnets), fixed and floating addresses,
VLAN/VXLAN segments, network quotas, addressing plans, and isolation (security rules,
peerings, reachability)."""
