"""Surveys and awareness campaigns in chat: questionnaires, campaigns, answers, results."""
