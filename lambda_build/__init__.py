"""The Lambda build: lambda_build/Makefile (what `sam build` runs), the check of its output (check.py)
and the copy of the template for another architecture (arch_template.py)."""
