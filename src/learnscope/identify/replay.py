"""Re-run one stored network and return what it did on the probe batch: its layers' activities at every checkpoint.

A store keeps statistics, not tensors. Training is deterministic (explicit generators ``rng.network_generator(seed,
0)`` for the initialisation and ``(seed, 1)`` for the data order, no global RNG state), so the store's resolved grid
(``store.json``) and a network id are enough to train that network again and read its probe activities exactly:
:func:`replay_network` does that, checkpoint by checkpoint, through the same training loop as
:func:`learnscope.identify.simulation.train_and_record` (:func:`learnscope.identify.simulation.training_checkpoints`);
``tests/identify/test_nwb.py`` checks that the activity statistics of a replay equal the store's to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from learnscope.errors import StoreError
from learnscope.fileio import shown
from learnscope.identify.grid import expand
from learnscope.identify.store import Store


@dataclass(frozen=True)
class ReplayedNetwork:
    """The probe activities of one replayed network.

    Attributes:
        network_id: the store's id of the network.
        spec: its job spec (:func:`learnscope.identify.grid.expand`): task, architecture, rule, lr, seed, training,
            conditions.
        layers: layer names, in the circuit's order (the store's ``layer`` column).
        groups: ``"early" | "middle" | "deep"`` per layer (the store's ``group`` column).
        steps: ``(T,)`` optimisation step of each checkpoint (0 = initialisation).
        training_fraction: ``(T,)`` ``steps / total_steps``, in ``[0, 1]``.
        activities: one float64 array per layer, shape ``(T, P, U)``: the layer's output on the ``P`` probe inputs at
            each of the ``T`` checkpoints, flattened over the unit axes (``U = prod(out_shape)``; for a conv layer
            channel-major, as ``reshape``), exactly the tensor the store's ``act*`` statistics were computed from.
    """

    network_id: str
    spec: dict
    layers: tuple[str, ...]
    groups: tuple[str, ...]
    steps: np.ndarray
    training_fraction: np.ndarray
    activities: tuple[np.ndarray, ...]

    @property
    def n_checkpoints(self) -> int:
        return int(self.steps.shape[0])


def network_spec(store: Store | str | Path, network_id: str) -> dict:
    """The job spec of ``network_id`` from the store's recorded grid; a one-line :class:`StoreError` if the grid has
    no such network or the store has not finished it with status ``ok`` (diverged and failed networks have no
    activities to replay)."""
    store = store if isinstance(store, Store) else Store.open(Path(store))
    grid = store.meta.get("grid")
    if not isinstance(grid, dict):
        raise StoreError(f"{shown(store.root)}/store.json holds no grid; it was not written by identify simulate")
    specs = {s["network_id"]: s for s in expand(grid)}
    if network_id not in specs:
        ids = sorted(specs)
        few = ", ".join(ids[:4]) + (", …" if len(ids) > 4 else "")
        raise StoreError(f"network {network_id!r} is not in the grid of {shown(store.root)} (its {len(ids)} "
                         f"network(s): {few}); list them with the store's networks table")
    status = store.statuses().get(network_id)
    if status is None:
        raise StoreError(f"network {network_id} of {shown(store.root)} is not simulated yet; run identify simulate "
                         "first")
    if status != "ok":
        raise StoreError(f"network {network_id} of {shown(store.root)} has status {status}; only networks that "
                         "trained (status ok) have activities to export")
    return specs[network_id]


def replay_network(store: Store | str | Path, network_id: str) -> ReplayedNetwork:
    """Train network ``network_id`` of ``store`` again and return its probe activities at every checkpoint.

    Deterministic: the same store and id give bit-identical activities (float32 training, returned as float64).
    Cost: one training of the network (the store's own wall time per network), in this process, one thread.

    Raises:
        StoreError: unknown network, not simulated, or not ``ok`` (see :func:`network_spec`); or the replay
            diverges although the store says it trained (the store was written by other code).
    """
    # imported here: simulation pulls in joblib/tqdm, which the NWB reader does not need
    from learnscope.identify.simulation import Diverged, setup_training, training_checkpoints

    spec = network_spec(store, network_id)
    run = setup_training(spec)
    circuit = run.circuit
    acts: list[list[np.ndarray]] = [[] for _ in circuit.layers]
    try:
        for point in training_checkpoints(run):
            if point.checkpoint is None:  # a step only jittered conditions measure
                continue
            with torch.no_grad():
                _, records = circuit.forward(point.params, run.task.probe, record=True)
            for layer in circuit.layers:
                out = records[layer.index]["output"].detach().to(torch.float64)
                acts[layer.index].append(out.reshape(out.shape[0], -1).numpy().copy())
    except Diverged as err:
        raise StoreError(f"replaying network {network_id} diverged at step {err.step} although the store says it "
                         "trained; the store was written by another version of learnscope") from None
    return ReplayedNetwork(
        network_id=network_id, spec=spec,
        layers=tuple(layer.name for layer in circuit.layers), groups=tuple(layer.group for layer in circuit.layers),
        steps=run.steps.astype(np.int64), training_fraction=run.steps / run.total_steps,
        activities=tuple(np.stack(a) for a in acts),
    )
