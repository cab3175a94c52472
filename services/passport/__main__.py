from services.passport.app import DEFAULT_PORT, NAME, bootstrap
from shared.runner import serve

serve(NAME, bootstrap, default_port=DEFAULT_PORT)
