"""Users, roles, login and the buying organizations."""
