"""MongoDB back end (PyMongo ``AsyncMongoClient``). Placeholder replaced by the real adapter."""
