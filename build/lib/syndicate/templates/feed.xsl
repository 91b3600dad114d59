<?xml version="1.0" encoding="UTF-8"?>
<!--
  feed.xsl - browser preview stylesheet for syndicate's web feeds.

  One XSLT 1.0 stylesheet for BOTH the RSS 2.0 feed and the Atom 1.0 feed.
  A feed references it with
      <?xml-stylesheet type="text/xsl" href="feed.xsl"?>
  so that a person who opens the feed in a browser sees a readable HTML page
  (what a feed is, the address to copy into a feed reader, and the latest
  posts) instead of raw XML. Feed readers ignore it.

  Rules kept on purpose:
    * XSLT 1.0 only (the only version browsers implement).
    * Output escaping is never disabled: every title and summary is written
      as text, so "&amp;" and "&lt;b&gt;" in the feed show as "&" and "<b>".
      (Firefox would ignore that anyway.) content:encoded (HTML) is not shown.
    * Self-contained page: inline CSS only, no JavaScript, no web fonts, no
      external resources other than the posts' own featured images.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:content="http://purl.org/rss/1.0/modules/content/"
    xmlns:media="http://search.yahoo.com/mrss/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom content media dc">

  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <!-- ================================================================
       Feed-level values, whichever the feed format is.
       ================================================================ -->

  <xsl:variable name="is-atom" select="boolean(/atom:feed)"/>

  <xsl:variable name="feed-title">
    <xsl:choose>
      <xsl:when test="$is-atom"><xsl:value-of select="normalize-space(/atom:feed/atom:title)"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="normalize-space(/rss/channel/title)"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <xsl:variable name="feed-description">
    <xsl:choose>
      <xsl:when test="$is-atom"><xsl:value-of select="normalize-space(/atom:feed/atom:subtitle)"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="normalize-space(/rss/channel/description)"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <!-- The web site: RSS channel/link; Atom link rel=alternate (or no rel). -->
  <xsl:variable name="site-url">
    <xsl:choose>
      <xsl:when test="$is-atom">
        <xsl:value-of select="normalize-space((/atom:feed/atom:link[@rel='alternate' or not(@rel)])[1]/@href)"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="normalize-space(/rss/channel/link)"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <!-- The feed's own address: atom:link rel=self (in RSS channel or Atom feed). -->
  <xsl:variable name="self-url">
    <xsl:choose>
      <xsl:when test="$is-atom">
        <xsl:value-of select="normalize-space(/atom:feed/atom:link[@rel='self'][1]/@href)"/>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="normalize-space(/rss/channel/atom:link[@rel='self'][1]/@href)"/>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <xsl:variable name="feed-lang">
    <xsl:choose>
      <xsl:when test="$is-atom"><xsl:value-of select="normalize-space(/atom:feed/@xml:lang)"/></xsl:when>
      <xsl:otherwise><xsl:value-of select="normalize-space(/rss/channel/language)"/></xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <xsl:variable name="format-name">
    <xsl:choose>
      <xsl:when test="$is-atom">Atom</xsl:when>
      <xsl:otherwise>RSS</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <!-- ================================================================
       The page.
       ================================================================ -->

  <xsl:template match="/">
    <html>
      <xsl:if test="string($feed-lang)">
        <xsl:attribute name="lang"><xsl:value-of select="$feed-lang"/></xsl:attribute>
      </xsl:if>
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="color-scheme" content="light dark"/>
        <meta name="robots" content="noindex"/>
        <title>
          <xsl:choose>
            <xsl:when test="string($feed-title)"><xsl:value-of select="$feed-title"/></xsl:when>
            <xsl:otherwise>Web feed</xsl:otherwise>
          </xsl:choose>
          <xsl:text> (</xsl:text><xsl:value-of select="$format-name"/><xsl:text> feed)</xsl:text>
        </title>
        <style>
:root {
  color-scheme: light dark;
  --bg: #faf9f6;
  --fg: #1f1f22;
  --muted: #5c5f66;
  --accent: #b4470e;
  --accent-hover: #8a3408;
  --card: #ffffff;
  --border: #e4e0d8;
  --banner-bg: #fff3e3;
  --banner-border: #f0c48e;
  --code-bg: #ffffff;
  --tag-bg: #f0ede6;
  --tag-fg: #44464c;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #131316;
    --fg: #e9e7e3;
    --muted: #a3a09a;
    --accent: #ff9c5e;
    --accent-hover: #ffbf94;
    --card: #1c1c20;
    --border: #2f2f35;
    --banner-bg: #2a1e12;
    --banner-border: #6a4322;
    --code-bg: #17171a;
    --tag-bg: #2a2a30;
    --tag-fg: #d2cfc9;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--fg);
  font: 1rem/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  overflow-wrap: break-word;
  word-wrap: break-word;
}
a { color: var(--accent); text-decoration-thickness: 1px; text-underline-offset: 0.15em; }
a:hover, a:focus { color: var(--accent-hover); }
.wrap { max-width: 46rem; margin: 0 auto; padding: 1rem 1rem 3rem; }
@media (min-width: 40rem) { .wrap { padding: 2rem 1.5rem 4rem; } }

.banner {
  display: flow-root;
  background: var(--banner-bg);
  border: 1px solid var(--banner-border);
  border-radius: 0.75rem;
  padding: 0.9rem 1rem;
  font-size: 0.95rem;
}
.banner p { margin: 0; }
.banner p + p { margin-top: 0.5rem; clear: left; }
.icon {
  float: left;
  width: 2rem;
  height: 2rem;
  margin: 0.1rem 0.75rem 0.25rem 0;
  border-radius: 0.45rem;
  background:
    radial-gradient(circle at 27% 73%, #fff 0 0.17rem, transparent 0.18rem),
    radial-gradient(circle at 15% 85%, transparent 0 0.55rem, #fff 0.56rem 0.72rem, transparent 0.73rem),
    radial-gradient(circle at 15% 85%, transparent 0 0.98rem, #fff 0.99rem 1.15rem, transparent 1.16rem),
    linear-gradient(135deg, #f7a046, #e0661b);
}
.feed-url {
  display: block;
  margin-top: 0.35rem;
  padding: 0.45rem 0.6rem;
  background: var(--code-bg);
  border: 1px solid var(--banner-border);
  border-radius: 0.4rem;
  font: 0.875rem/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  overflow-wrap: anywhere;
  word-break: break-all;
  -webkit-user-select: all;
  user-select: all;
}
.hint { color: var(--muted); font-size: 0.85rem; }

header.feed { margin: 2rem 0 1.5rem; }
header.feed h1 {
  margin: 0;
  font-size: 1.75rem;
  line-height: 1.2;
  letter-spacing: -0.01em;
}
@media (min-width: 40rem) { header.feed h1 { font-size: 2.25rem; } }
header.feed h1 a { color: inherit; text-decoration: none; }
header.feed h1 a:hover, header.feed h1 a:focus { color: var(--accent); }
header.feed .description { margin: 0.5rem 0 0; color: var(--muted); font-size: 1.05rem; }
header.feed .site { margin: 0.5rem 0 0; font-size: 0.95rem; }

h2.section {
  margin: 0 0 0.75rem;
  font-size: 0.8rem;
  font-weight: 600;
  letter-spacing: 0.08em;
  text-transform: uppercase;
  color: var(--muted);
}
.entries { list-style: none; margin: 0; padding: 0; }
.entry {
  background: var(--card);
  border: 1px solid var(--border);
  border-radius: 0.75rem;
  overflow: hidden;
  margin: 0 0 1rem;
}
.entry .figure { display: block; margin: 0; background: var(--tag-bg); }
.entry img {
  display: block;
  width: 100%;
  height: auto;
  max-height: 22rem;
  object-fit: cover;
}
.entry .body { padding: 0.9rem 1rem 1rem; }
@media (min-width: 40rem) { .entry .body { padding: 1.1rem 1.35rem 1.25rem; } }
.entry h3 { margin: 0; font-size: 1.2rem; line-height: 1.3; }
@media (min-width: 40rem) { .entry h3 { font-size: 1.3rem; } }
.entry h3 a { color: inherit; text-decoration: none; }
.entry h3 a:hover, .entry h3 a:focus { color: var(--accent); text-decoration: underline; }
.meta { margin: 0.3rem 0 0; color: var(--muted); font-size: 0.85rem; }
.summary { margin: 0.6rem 0 0; }
.tags { list-style: none; margin: 0.75rem 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 0.35rem; }
.tags li {
  background: var(--tag-bg);
  color: var(--tag-fg);
  border-radius: 999px;
  padding: 0.1rem 0.6rem;
  font-size: 0.75rem;
  line-height: 1.6;
  max-width: 100%;
}
.empty { color: var(--muted); }
footer { margin-top: 2rem; color: var(--muted); font-size: 0.85rem; text-align: center; }
        </style>
      </head>
      <body>
        <div class="wrap">
          <xsl:call-template name="banner"/>

          <header class="feed">
            <h1>
              <xsl:call-template name="link-or-text">
                <xsl:with-param name="href" select="$site-url"/>
                <xsl:with-param name="text">
                  <xsl:choose>
                    <xsl:when test="string($feed-title)"><xsl:value-of select="$feed-title"/></xsl:when>
                    <xsl:otherwise>Untitled feed</xsl:otherwise>
                  </xsl:choose>
                </xsl:with-param>
              </xsl:call-template>
            </h1>
            <xsl:if test="string($feed-description)">
              <p class="description"><xsl:value-of select="$feed-description"/></p>
            </xsl:if>
            <xsl:if test="string($site-url)">
              <p class="site"><a href="{$site-url}">Visit the website &#8594;</a></p>
            </xsl:if>
          </header>

          <main>
            <h2 class="section">Latest posts</h2>
            <xsl:choose>
              <xsl:when test="/rss/channel/item or /atom:feed/atom:entry">
                <ol class="entries">
                  <xsl:apply-templates select="/rss/channel/item | /atom:feed/atom:entry"/>
                </ol>
              </xsl:when>
              <xsl:otherwise>
                <p class="empty">This feed has no posts yet.</p>
              </xsl:otherwise>
            </xsl:choose>
          </main>

          <footer>
            <p>
              <xsl:value-of select="$format-name"/>
              <xsl:text> feed. What you see here is a preview; a feed reader shows new posts as they are published.</xsl:text>
            </p>
          </footer>
        </div>
      </body>
    </html>
  </xsl:template>

  <!-- "This is a web feed" banner, with the address to copy. -->
  <xsl:template name="banner">
    <aside class="banner" aria-label="About this page">
      <div class="icon" aria-hidden="true"></div>
      <p>
        <strong>This is a web feed</strong>
        <xsl:text> (RSS/Atom). Copy the address into your feed reader to subscribe.</xsl:text>
      </p>
      <xsl:if test="string($self-url)">
        <p>
          <span class="hint">Feed address:</span>
          <code class="feed-url"><xsl:value-of select="$self-url"/></code>
        </p>
      </xsl:if>
    </aside>
  </xsl:template>

  <!-- ================================================================
       RSS 2.0 item.
       ================================================================ -->

  <xsl:template match="item">
    <xsl:call-template name="entry">
      <xsl:with-param name="title" select="normalize-space(title)"/>
      <xsl:with-param name="href">
        <xsl:choose>
          <xsl:when test="normalize-space(link)"><xsl:value-of select="normalize-space(link)"/></xsl:when>
          <!-- guid is a permalink unless isPermaLink="false" -->
          <xsl:when test="normalize-space(guid) and not(guid/@isPermaLink = 'false')">
            <xsl:value-of select="normalize-space(guid)"/>
          </xsl:when>
        </xsl:choose>
      </xsl:with-param>
      <xsl:with-param name="date-text" select="normalize-space(pubDate)"/>
      <xsl:with-param name="datetime" select="''"/>
      <xsl:with-param name="author">
        <xsl:choose>
          <xsl:when test="normalize-space(dc:creator)"><xsl:value-of select="normalize-space(dc:creator[1])"/></xsl:when>
          <xsl:otherwise><xsl:value-of select="normalize-space(author)"/></xsl:otherwise>
        </xsl:choose>
      </xsl:with-param>
      <xsl:with-param name="summary" select="normalize-space(description)"/>
      <xsl:with-param name="categories" select="category"/>
      <xsl:with-param name="image" select="(media:content | media:group/media:content)
          [@url][not(@medium) or @medium = 'image'][not(@type) or starts-with(@type, 'image/')][1]"/>
    </xsl:call-template>
  </xsl:template>

  <!-- ================================================================
       Atom 1.0 entry.
       ================================================================ -->

  <xsl:template match="atom:entry">
    <xsl:variable name="when">
      <xsl:choose>
        <xsl:when test="normalize-space(atom:published)"><xsl:value-of select="normalize-space(atom:published)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="normalize-space(atom:updated)"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:call-template name="entry">
      <xsl:with-param name="title" select="normalize-space(atom:title)"/>
      <xsl:with-param name="href" select="normalize-space((atom:link[@rel='alternate' or not(@rel)])[1]/@href)"/>
      <xsl:with-param name="date-text" select="substring($when, 1, 10)"/>
      <xsl:with-param name="datetime" select="$when"/>
      <xsl:with-param name="author">
        <xsl:choose>
          <xsl:when test="normalize-space(atom:author/atom:name)"><xsl:value-of select="normalize-space(atom:author[1]/atom:name)"/></xsl:when>
          <xsl:otherwise><xsl:value-of select="normalize-space(/atom:feed/atom:author[1]/atom:name)"/></xsl:otherwise>
        </xsl:choose>
      </xsl:with-param>
      <xsl:with-param name="summary" select="normalize-space(atom:summary)"/>
      <xsl:with-param name="categories" select="atom:category"/>
      <xsl:with-param name="image" select="(media:content | media:group/media:content)
          [@url][not(@medium) or @medium = 'image'][not(@type) or starts-with(@type, 'image/')][1]"/>
    </xsl:call-template>
  </xsl:template>

  <!-- ================================================================
       One post card (shared by RSS items and Atom entries).
       ================================================================ -->

  <xsl:template name="entry">
    <xsl:param name="title"/>
    <xsl:param name="href"/>
    <xsl:param name="date-text"/>
    <xsl:param name="datetime"/>
    <xsl:param name="author"/>
    <xsl:param name="summary"/>
    <xsl:param name="categories"/>
    <xsl:param name="image"/>

    <xsl:variable name="label">
      <xsl:choose>
        <xsl:when test="string($title)"><xsl:value-of select="$title"/></xsl:when>
        <xsl:otherwise>Untitled post</xsl:otherwise>
      </xsl:choose>
    </xsl:variable>

    <li>
      <article class="entry">
        <xsl:if test="$image">
          <xsl:call-template name="link-or-text">
            <xsl:with-param name="href" select="$href"/>
            <xsl:with-param name="class" select="'figure'"/>
            <xsl:with-param name="tabindex" select="'-1'"/>
            <xsl:with-param name="image" select="$image"/>
            <xsl:with-param name="alt" select="$label"/>
          </xsl:call-template>
        </xsl:if>
        <div class="body">
          <h3>
            <xsl:call-template name="link-or-text">
              <xsl:with-param name="href" select="$href"/>
              <xsl:with-param name="text" select="$label"/>
            </xsl:call-template>
          </h3>
          <xsl:if test="string($date-text) or string($author)">
            <p class="meta">
              <xsl:if test="string($date-text)">
                <time>
                  <xsl:if test="string($datetime)">
                    <xsl:attribute name="datetime"><xsl:value-of select="$datetime"/></xsl:attribute>
                  </xsl:if>
                  <xsl:value-of select="$date-text"/>
                </time>
              </xsl:if>
              <xsl:if test="string($date-text) and string($author)">
                <xsl:text> &#183; </xsl:text>
              </xsl:if>
              <xsl:if test="string($author)">
                <span class="author"><xsl:value-of select="$author"/></span>
              </xsl:if>
            </p>
          </xsl:if>
          <!-- Summary as plain text: output escaping stays on. -->
          <xsl:if test="string($summary)">
            <p class="summary"><xsl:value-of select="$summary"/></p>
          </xsl:if>
          <xsl:if test="$categories">
            <ul class="tags" aria-label="Categories">
              <xsl:apply-templates select="$categories" mode="tag"/>
            </ul>
          </xsl:if>
        </div>
      </article>
    </li>
  </xsl:template>

  <!-- Categories: RSS <category>text</category>, Atom <category term label/>. -->
  <xsl:template match="category" mode="tag">
    <xsl:if test="normalize-space(.)">
      <li><xsl:value-of select="normalize-space(.)"/></li>
    </xsl:if>
  </xsl:template>

  <xsl:template match="atom:category" mode="tag">
    <xsl:variable name="name">
      <xsl:choose>
        <xsl:when test="normalize-space(@label)"><xsl:value-of select="normalize-space(@label)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="normalize-space(@term)"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:if test="string($name)">
      <li><xsl:value-of select="$name"/></li>
    </xsl:if>
  </xsl:template>

  <!-- ================================================================
       Helpers.
       ================================================================ -->

  <!-- An <a> around the text (or image) when there is an address, else a
       plain span. -->
  <xsl:template name="link-or-text">
    <xsl:param name="href"/>
    <xsl:param name="text"/>
    <xsl:param name="class"/>
    <xsl:param name="tabindex"/>
    <xsl:param name="image"/>
    <xsl:param name="alt"/>
    <xsl:choose>
      <xsl:when test="string($href)">
        <a href="{$href}">
          <xsl:if test="string($class)"><xsl:attribute name="class"><xsl:value-of select="$class"/></xsl:attribute></xsl:if>
          <xsl:if test="string($tabindex)">
            <xsl:attribute name="tabindex"><xsl:value-of select="$tabindex"/></xsl:attribute>
            <xsl:attribute name="aria-hidden">true</xsl:attribute>
          </xsl:if>
          <xsl:choose>
            <xsl:when test="$image">
              <xsl:call-template name="img">
                <xsl:with-param name="media" select="$image"/>
                <xsl:with-param name="alt" select="$alt"/>
              </xsl:call-template>
            </xsl:when>
            <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
          </xsl:choose>
        </a>
      </xsl:when>
      <xsl:otherwise>
        <span>
          <xsl:if test="string($class)"><xsl:attribute name="class"><xsl:value-of select="$class"/></xsl:attribute></xsl:if>
          <xsl:choose>
            <xsl:when test="$image">
              <xsl:call-template name="img">
                <xsl:with-param name="media" select="$image"/>
                <xsl:with-param name="alt" select="$alt"/>
              </xsl:call-template>
            </xsl:when>
            <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
          </xsl:choose>
        </span>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Featured image from media:content; alt text is the post title. -->
  <xsl:template name="img">
    <xsl:param name="media"/>
    <xsl:param name="alt"/>
    <img src="{normalize-space($media/@url)}" alt="{$alt}" loading="lazy" decoding="async">
      <xsl:if test="number($media/@width) &gt; 0 and number($media/@height) &gt; 0">
        <xsl:attribute name="width"><xsl:value-of select="$media/@width"/></xsl:attribute>
        <xsl:attribute name="height"><xsl:value-of select="$media/@height"/></xsl:attribute>
      </xsl:if>
    </img>
  </xsl:template>

</xsl:stylesheet>
