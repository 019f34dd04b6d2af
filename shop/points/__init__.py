"""Seasonal sales points (西瓜临时销售点): the points, their growers and permits, sales by weight recorded on
the operator's phone (offline first, synced exactly once), and the day's cash count."""
