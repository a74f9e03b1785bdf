"""``make bench``: every benchmark of the project, each writing JSON into benchmarks/results/."""

from benchmarks import (
    animal_routes,
    bias_core,
    bias_memory,
    bias_networks,
    bias_unroll_speed,
    cli_help,
    identify_classify,
    identify_ensemble,
    identify_simulate,
)

if __name__ == "__main__":
    cli_help.run()
    print("wrote benchmarks/results/cli_help.json")
    bias_core.run()
    print("wrote benchmarks/results/bias_core.json and sinkhorn.json")
    bias_memory.run()
    print("wrote benchmarks/results/bias_memory.json")
    bias_unroll_speed.run()
    print("wrote benchmarks/results/bias_unroll_speed.json")
    bias_networks.run()
    print("wrote benchmarks/results/bias_networks.json")
    identify_simulate.run()
    print("wrote benchmarks/results/identify_simulate.json")
    identify_ensemble.run()
    print("wrote benchmarks/results/identify_ensemble.json")
    identify_classify.run()
    print("wrote benchmarks/results/identify_classify.json")
    animal_routes.run(seeds=[0])  # one seed per route (all five: python -m benchmarks.animal_routes, ~25 min)
    print("wrote benchmarks/results/animal_routes.json")
