"""`python -m vaujax.infer`: the `vaujax infer` command (vaujax/app/infer.py). The library
object is `vaujax.inference.assistant.Assistant`."""

if __name__ == "__main__":
  from vaujax.app import infer
  infer.run()
