# The interpreter of the Lambda runtime's minor version (template.yaml: python3.12): the project's venv,
# the tests and the build use it, so the bytecode in the artifacts is the runtime's own. Found on PATH,
# else under pyenv; PYTHON=... overrides. Included by the repository Makefile and lambda_build/Makefile.
RUNTIME_PYTHON := 3.12
comma := ,
define find_python
for candidate in $$(command -v python$(RUNTIME_PYTHON)) $$(ls -d "$$(pyenv root 2>/dev/null)"/versions/$(RUNTIME_PYTHON)*/bin/python$(RUNTIME_PYTHON) 2>/dev/null); do \
  "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(RUNTIME_PYTHON))))' 2>/dev/null && { echo "$$candidate"; break; }; \
done
endef
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell $(find_python))
endif

check-python:
	@test -n "$(PYTHON)" || { echo "Python $(RUNTIME_PYTHON) (the Lambda runtime's version) was not found on PATH or under pyenv." \
	  "Install it (e.g. 'pyenv install $(RUNTIME_PYTHON)' or your OS's python$(RUNTIME_PYTHON) package) or pass PYTHON=/path/to/python$(RUNTIME_PYTHON)." >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(RUNTIME_PYTHON)" else f"$(PYTHON) is Python {v}; the Lambda runtime is python$(RUNTIME_PYTHON)")'

.PHONY: check-python
