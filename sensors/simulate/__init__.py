"""A sensor evaluated offline on a sample event, as Argo Events v1.9 would: which of its
triggers fire and what each would create, or why nothing fires.

``jsonpath`` (gjson paths and sjson writes), ``gotemplate`` (the templates sensors use),
``events`` (a sample as the sensor would receive it), ``filters`` (data filters), ``params``
(trigger parameters and payloads), ``run`` (all of it, for one sensor and one event). They
implement what this project's sensors use; anything else is refused as Unsupported.
"""

from sensors.simulate.jsonpath import Unsupported
from sensors.simulate.run import Simulation, TriggerOutcome, simulate

__all__ = ["Simulation", "TriggerOutcome", "Unsupported", "simulate"]
