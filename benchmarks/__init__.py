"""``vgpu-bench``: the mediator's costs, each beside a floor measured in the same run."""
