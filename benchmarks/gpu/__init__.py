"""The GPU check (benchmarks/gpu/run.sh): the tests marked gpu and the GPU benchmarks, with a CPU dry mode."""
