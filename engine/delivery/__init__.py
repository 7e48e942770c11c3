"""Delivery: spectra to Fritz/SkyPortal, the night report by e-mail, Slack and TNS -- exactly once,
never blocking the night, nothing sent unless configured.

Modules, from the state to the wire:

``settings``   the ``[delivery] [fritz] [smtp] [report] [slack] [tns]`` tables (secrets marked)
``planner``    what the night calls for, decided from the state database (pure decisions)
``payloads``   what is sent, built by pure functions (ascii body, annotations, status texts)
``ledger``     the ``deliveries`` table: keys, states, attempts, backoff, interrupted rows
``service``    the queue beside the engine loop: plan, send on threads, record on the main thread
``http``       a thin HTTP client that says whether a failed call can have reached the server
``fritz`` ``mail`` ``slack`` ``tns``   one thin client per destination
``requests``   the engine's ``tns_report`` and ``deliver_retry`` request handlers
``status`` ``cli``   the ledger as text; ``sedmtui deliver``
``standins``   loopback stand-ins of SkyPortal, Slack and TNS (tests, demonstrations)
"""
