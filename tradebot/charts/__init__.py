"""Chat charts: plain data in (model.py), PNG bytes out (render.py, matplotlib imported on the first chart),
rendered one at a time on a small worker with a cache (worker.py); equity reconstruction (equity.py).

Nothing here reads the database or imports telebot: services/charts.py gathers the user's own rows and
hands them over, so what a chart shows is exactly the data passed to the renderer.
"""
