"""`python -m vaujax.demo`: the `vaujax demo` command (vaujax/app/demo.py)."""

if __name__ == "__main__":
  from vaujax.app import demo
  demo.run()
