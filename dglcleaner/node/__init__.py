"""Transductive node classification under label poisoning (Lingam et al., ICLR 2024).

``models`` (victims on dgl.nn), ``training`` (full-batch training with the reference's early
stopping), ``splits`` (random / class-equalised splits, stratified folds), ``tuning`` (optuna
search over the paper's grid), ``protocol`` (the faithful protocol and the flawed settings)
and ``runner`` (attack x budgets x splits -> records and a summary).
"""
