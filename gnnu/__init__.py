"""gnnu: graph neural networks vs CNNs for neutrino-detector events.

Data walks one way: ``sim`` → ``io`` → ``graph`` / ``images`` → ``models`` → ``train`` → ``evaluate``.
The shared data model lives in :mod:`gnnu.events`, detector geometries in :mod:`gnnu.detectors`.
"""

__version__ = "0.1.0"
