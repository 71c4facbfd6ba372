"""The JSON API's routes, one module per resource; each calls the operations layer."""
