"""Public analysis functions: validate, dispatch to a backend kernel, wrap the result."""
