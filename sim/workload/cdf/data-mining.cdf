# Data mining: the distribution of flow sizes measured in a cluster running data-mining jobs in
# Greenberg et al., "VL2: A Scalable and Flexible Data Center Network", SIGCOMM 2009, Figure 2,
# as the pFabric evaluation uses it (Alizadeh et al., "pFabric", SIGCOMM 2013, §5, "data mining
# workload") and later work after it (PIAS, Bai et al., NSDI 2015; the HPCC and netbench
# simulators ship the same points).
#
# Heavily skewed: 80% of flows are under 10 KB, while 87% of the bytes are in the 2% of flows
# from 100 MB to 1 GB. Mean 12.7 MB (with the linear interpolation the simulator samples with).
# A short run sees few of the large flows, so its offered load fluctuates far more than with web
# search: run it for long enough (see docs/simulator.md).
#
# Format (docs/simulator.md, "Size distributions"): <size in bytes> <cumulative probability>.
# The published table starts at 0 bytes; here it starts at 1 byte (an RPC response has at least
# one byte), which moves the mean by less than one byte.
1           0
180         0.1
216         0.2
560         0.3
900         0.4
1100        0.5
1870        0.6
3160        0.7
10000       0.8
400000      0.9
3160000     0.95
100000000   0.98
1000000000  1
