/*
 * list: an intrusive, circular, doubly linked list with a sentinel head.
 *
 * The links live inside the listed struct, so adding and removing never
 * allocates, and an element removes itself in O(1) without knowing which
 * list it is on. container_of() gets from the links back to the element.
 *
 *   struct list head;  list_init(&head);
 *   list_add(&head, &c->link);             newest first
 *   list_for_each_safe(pos, tmp, &head) { struct conn *c =
 *       list_entry(pos, struct conn, link); ... list_del(pos); }
 */
#ifndef FERRY_LIST_H
#define FERRY_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member)                                        \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)

struct list {
    struct list *prev; /* previous element or the head */
    struct list *next; /* next element or the head */
};

/* An empty list, or an element that is on no list. */
static inline void
list_init(struct list *l)
{
    l->prev = l->next = l;
}

static inline bool
list_empty(const struct list *head)
{
    return head->next == head;
}

/* Whether an element (initialised with list_init) is on a list. */
static inline bool
list_linked(const struct list *l)
{
    return l->next != l;
}

static inline void
list_insert_between(struct list *l, struct list *prev, struct list *next)
{
    l->prev = prev;
    l->next = next;
    prev->next = l;
    next->prev = l;
}

/* Adds l at the front (LIFO order). */
static inline void
list_add(struct list *head, struct list *l)
{
    list_insert_between(l, head, head->next);
}

/* Adds l at the back (FIFO order). */
static inline void
list_add_tail(struct list *head, struct list *l)
{
    list_insert_between(l, head->prev, head);
}

/* Unlinks l and leaves it as an empty list, so removing twice is safe. */
static inline void
list_del(struct list *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    list_init(l);
}

/* The first element's links, or NULL when empty. */
static inline struct list *
list_first(const struct list *head)
{
    return list_empty(head) ? NULL : head->next;
}

/*
 * Moves every element of src to the front of dst; src ends empty. O(1).
 */
static inline void
list_splice(struct list *dst, struct list *src)
{
    if (list_empty(src))
        return;
    src->prev->next = dst->next;
    dst->next->prev = src->prev;
    dst->next = src->next;
    src->next->prev = dst;
    list_init(src);
}

#define list_for_each(pos, head)                                               \
    for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
/* Iteration that allows list_del(pos) in the body. */
#define list_for_each_safe(pos, tmp, head)                                     \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);           \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
