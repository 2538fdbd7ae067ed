"""The app module of batchchat.apps.NinjaAssetsConfig (django-ninja's templates and static
files); nothing to import."""
