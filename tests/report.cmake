# Issue 8, analysis: scripts/report.py (PNG plots + summary.txt) and `trustee inspect` on a tiny real
# run log (tests/report.sh; needs /usr/bin/python3 with h5py, numpy, matplotlib, else skips), and the
# BFCL v4 summary arithmetic of `trustee eval --results` (tests/bfcl_summary.sh, rule in docs/bfcl.md).
trustee_sh_test(report_inspect report.sh)
trustee_sh_test(bfcl_summary bfcl_summary.sh)
