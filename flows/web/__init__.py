"""The network: fetching with limits, the address guard, per-host politeness and robots.txt."""
