"""Telegram front: polling (bot.py), the dispatcher (handlers.py), command handlers by domain (commands/), button
actions (callbacks.py), reply texts (format/), sending (sender.py) and event delivery (notifier.py)."""
