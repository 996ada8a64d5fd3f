"""The widget function: widget.js and the public chatbot routes, FastAPI under the Lambda Web Adapter."""
