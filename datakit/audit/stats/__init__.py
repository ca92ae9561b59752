"""The audit's statistics as small pure functions: floors and intervals, modes, memorisation, shares, CAS."""
