"""The store's price book: articles with versioned, time-scheduled changes (shared by scales and shelf labels).

``PriceBook(conn)`` reads/writes it; ``register_pricebook(processor)`` adds the signed ``price.update``
command; ``read_csv`` loads a local import file.
"""

from agent.pricebook.article import UNITS, Article, ArticleError, article_from_dict, ean13_check_digit
from agent.pricebook.book import Change, PriceBook
from agent.pricebook.commands import register_pricebook
from agent.pricebook.csv_import import read_csv

__all__ = ["UNITS", "Article", "ArticleError", "Change", "PriceBook", "article_from_dict", "ean13_check_digit",
           "read_csv", "register_pricebook"]
