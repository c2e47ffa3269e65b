"""`ladder explain`: attributions for single inputs of a trained run, checked for faithfulness.

Methods by rung family (explain/methods.py): Integrated Gradients and saliency through captum for the
networks on images and tables, SHAP (TreeExplainer for tree rungs, KernelExplainer otherwise) for tables
and scikit-learn rungs, Integrated Gradients on the token embeddings and LIME for text. Every explanation
gets deletion and insertion curves against random orders (faithfulness.py), and methods that explain the
same input are compared by the rank correlation of their attributions.
"""
