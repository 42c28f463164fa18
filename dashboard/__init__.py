"""BYOL Lab's Streamlit dashboard: thin views over ``byol_core`` (run with ``streamlit run dashboard/app.py``)."""
