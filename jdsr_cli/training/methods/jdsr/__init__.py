"""JDSR joint distillation (Luo et al., ACM MM 2021) as the ``jdsr`` training method.

``method`` is the method class, ``options`` its ``[jdsr]`` table, ``networks`` the sectioned target, peer
and frozen superior-LR encoder, ``meta`` the label generator's look-ahead step and ``gap`` the peer/target
performance gap. Every design choice the paper does not pin down is marked [I] in
``docs/design/jdsr-method.md`` and measured in ``docs/jdsr-results.md``.
"""
