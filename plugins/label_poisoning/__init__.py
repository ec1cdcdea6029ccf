"""Label-poisoning attacks for node classification (Lingam et al., ICLR 2024 and its baselines).

One module per attack family; every class is a plugin (``kind="attack"``, ``task="node"``)
registered under its own entry-point name: rnd, rnd-bin, deg, deg-bin, lp, lafak, mg, meta,
sgc, sgc-bin, ntk, ntk-bin.
"""
