# Benchmarks beside their peers (bench/): checks that the peers compute the right thing.
# The benchmarks themselves (bench/generate.sh) are run by hand, not by ctest.
trustee_sh_test(torch_peer test_torch_peer.sh)
