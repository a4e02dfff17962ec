"""fastbp benchmarks (airspeed velocity); see asv_bench/asv.conf.json."""
