from __future__ import annotations

from django.urls import path

from evaluation import set_views

# Served under /sets/ (evaluation.urls), in the "evaluation" namespace.
urlpatterns = [
    path("", set_views.set_list, name="set_list"),
    path("<int:pk>/", set_views.set_grid, name="set"),
    path(
        "<int:pk>/questions/<int:number>/",
        set_views.question_history_view,
        name="question_history",
    ),
]
