from services.passport.app import DEFAULT_PORT, NAME, bootstrap
from shared.runner import serve

if __name__ == "__main__":  # not when a spawned worker process imports it
    serve(NAME, bootstrap, default_port=DEFAULT_PORT)
