"""Golden traces: the scenario language, the recorder, the replayer and the compatibility checklist.

Modules: ``format`` (trace format v1, ``docs/trace-format.md``), ``scenario`` (YAML scenarios, file:line errors),
``runner`` (run one scenario into a trace), ``client`` (the recorded WS/HTTP shell), ``identity`` (Ed25519
device key and signed connect blocks), ``target`` (:class:`~recorder.target.Target`: URL + credentials),
``replay`` (:func:`~recorder.replay.replay_trace`), ``cli`` (``parity record``), ``checklist``
(``docs/compatibility.yaml`` -> ``docs/compatibility.md``), ``capture`` (shadow-proxy tap -> trace).
"""
