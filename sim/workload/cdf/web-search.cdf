# Web search: the distribution of flow sizes in the DCTCP paper's web-search (query and
# background) traffic — Alizadeh et al., "Data Center TCP (DCTCP)", SIGCOMM 2010, Figure 4 —
# as the pFabric evaluation encodes it (Alizadeh et al., "pFabric: Minimal Near-Optimal
# Datacenter Transport", SIGCOMM 2013, §5, "web search workload"; its ns-2 file lists sizes in
# 1460-byte packets) and as HOMA re-uses it (Montazeri et al., SIGCOMM 2018, the workload
# labelled "DCTCP"). Sizes below are the pFabric packet counts × 1460 bytes.
#
# About 54% of flows are under 100 KB, yet about 95% of the bytes are in flows larger than
# 1 MB. Mean 1.67 MB (with the linear interpolation the simulator samples with).
#
# Format (docs/simulator.md, "Size distributions"): <size in bytes> <cumulative probability>.
# The first two lines put 15% of the mass at exactly 6 packets, as the pFabric file does.
8760      0
8760      0.15
18980     0.2
27740     0.3
48180     0.4
77380     0.53
194180    0.6
973820    0.7
1946180   0.8
4866180   0.9
9733820   0.97
29200000  1
