"""Public analysis functions: validate, dispatch to a backend kernel, wrap the result.

Signed network science: :mod:`.motifs` (closed-form signed motif census and z-scores against
null ensembles), :mod:`.maxent` (maximum-entropy signed nulls with analytic expectations) and
:mod:`.balance` (balance ratio, frustration index, sign consistency).
"""
