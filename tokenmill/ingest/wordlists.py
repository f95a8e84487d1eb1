"""Built-in vocabularies for the synthetic crawl (`generate.py`): common words per language, roughly in
frequency order (the generator draws them with Zipf weights), syllables for inventing rare words, and the page
furniture (menus, cookie banners, footers) a real site wraps around its articles. All written for tokenmill;
no third-party text is shipped.
"""

from __future__ import annotations

LANGUAGES = ("en", "de", "fr", "es", "ja")
SPACED = {"en": True, "de": True, "fr": True, "es": True, "ja": False}  # ja: words join without spaces

COMMON = {
    "en": """
the of and to a in is that for it as was with be by on not he this are or his from at which but have an they
you were her she there been one all we their has would when if so no will more can out other its up who into
them then some time only could also new two first may after any these over such like our most even made where
many people well because much through before back years way between must should each how work still life world
while last same great since under city part place right house state found three being another during both case
country system again day small large however school public water number point home group government often
between family law night several general market without night river question money report level fact policy
history story council study water power service health company result area example market problem program name
local member office early later course along early future north south east west center report morning evening
village garden window table paper letter music season summer winter spring autumn field forest mountain island
bridge station street road train harbor market doctor teacher student worker farmer writer artist builder
engineer pilot driver officer judge mayor minister neighbor friend mother father sister brother child children
daughter son animal horse bird fish tree flower grass stone glass metal wood iron silver gold copper cotton wool
bread cheese apple orange coffee tea sugar salt butter milk dinner lunch breakfast kitchen room door wall floor
roof chair bed lamp clock phone screen computer network software data model signal energy engine machine factory
product price cost value trade budget profit salary bank loan tax rate growth crisis plan project design
method theory science research experiment evidence analysis answer reason idea choice chance change effect
difference problem solution purpose process practice quality quantity rule order sense size shape color sound
voice language word sentence page book article chapter list message picture film camera photo image record
travel journey visit trip holiday weekend hour minute moment week month century decade age past present
open close begin finish start stop keep hold bring carry take give send receive find lose win play watch look
listen speak talk tell write read learn teach understand believe remember forget decide choose follow lead
build grow fall rise move turn walk run drive fly swim climb cook eat drink sleep wake live die help need want
quickly slowly carefully quietly loudly early late often rarely always never usually sometimes perhaps almost
nearly really clearly simply finally suddenly together already soon again today tomorrow yesterday tonight
good bad big little long short high low old young hot cold warm cool dark bright heavy light strong weak rich
poor happy sad easy hard simple difficult important possible popular special certain clear free full empty
""",
    "de": """
der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden aus er hat
dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur oder aber vor zur bis
mehr durch man sein wurde sei schon wenn wieder kann unter jetzt immer heute dann zwei drei ersten neue neuen
jahr jahre zeit stadt land leben welt haus schule kinder kind frau mann familie freund freunde arbeit geld
wasser straße weg bahnhof brücke garten wald berg fluss see insel dorf markt kirche rathaus bürgermeister
regierung gemeinde bürger menschen leute frage antwort grund beispiel ergebnis bericht zeitung nachricht
woche monat tag abend morgen nacht stunde minute jahrhundert sommer winter frühling herbst wetter regen schnee
sonne himmel baum blume vogel hund katze pferd tisch stuhl fenster tür zimmer küche bett lampe uhr buch seite
brief bild musik lied film sprache wort satz schüler lehrer arzt bäcker bauer fahrer ingenieur künstler
gehen kommen machen sagen sehen geben nehmen finden denken glauben wissen lernen lesen schreiben sprechen
hören spielen arbeiten wohnen leben bauen kaufen verkaufen fahren laufen essen trinken schlafen helfen
brauchen suchen zeigen bringen halten bleiben beginnen öffnen schließen erklären verstehen erzählen
gut schlecht groß klein lang kurz hoch niedrig alt jung warm kalt hell dunkel schnell langsam schön schwer
leicht einfach wichtig möglich richtig falsch neu früh spät stark schwach reich arm glücklich müde ruhig
laut offen wirklich vielleicht natürlich besonders zusammen danach damals bereits sofort endlich plötzlich
gestern morgen übermorgen ungefähr ziemlich sehr wenig viel genug ganz fast kaum etwa außerdem trotzdem
deshalb jedoch während obwohl weil damit denn sondern sowohl weder zwischen gegen ohne hinter neben
unternehmen wirtschaft politik gesellschaft forschung wissenschaft entwicklung verwaltung verkehr energie
umwelt gesundheit bildung kultur geschichte zukunft erfahrung meinung entscheidung veränderung lösung
problem projekt plan preis kosten steuer bank kredit wachstum handel produkt maschine fabrik technik
computer netzwerk daten programm größe farbe gefühl gedanke erinnerung hoffnung sorge freude straßenbahn
käse brot apfel kaffee milch zucker butter mittagessen frühstück abendessen urlaub reise ausflug
""",
    "fr": """
le la les de des du un une et à en est que qui dans pour pas sur au il elle ne se ce plus par avec son sa ses
mais ou comme on tout nous vous ils elles leur leurs été être avoir fait faire dit aussi bien très sans
encore même alors après avant depuis pendant entre sous chez deux trois premier première nouveau nouvelle
année ans jour jours temps ville pays monde vie maison école enfant enfants femme homme famille ami amis
travail argent eau rue route chemin gare pont jardin forêt montagne rivière mer île village marché église
mairie maire gouvernement commune citoyens gens question réponse raison exemple résultat rapport journal
nouvelle semaine mois soir matin nuit heure minute siècle été hiver printemps automne temps pluie neige
soleil ciel arbre fleur oiseau chien chat cheval table chaise fenêtre porte chambre cuisine lit lampe
horloge livre page lettre image musique chanson film langue mot phrase élève professeur médecin boulanger
agriculteur chauffeur ingénieur artiste aller venir voir donner prendre trouver penser croire savoir
apprendre lire écrire parler écouter jouer travailler habiter vivre construire acheter vendre conduire
courir manger boire dormir aider chercher montrer apporter tenir rester commencer ouvrir fermer expliquer
comprendre raconter bon mauvais grand petit long court haut bas vieux jeune chaud froid clair sombre rapide
lent beau belle lourd léger simple important possible vrai faux nouveau tôt tard fort faible riche pauvre
heureux fatigué calme ouvert vraiment peut-être naturellement surtout ensemble ensuite autrefois déjà
aussitôt enfin soudain hier demain environ assez beaucoup peu trop presque jamais toujours souvent parfois
donc pourtant cependant parce lorsque quand afin contre derrière devant entreprise économie politique
société recherche science développement administration transport énergie environnement santé éducation
culture histoire avenir expérience opinion décision changement solution problème projet prix coût impôt
banque crédit croissance commerce produit machine usine technique ordinateur réseau données programme
taille couleur sentiment pensée souvenir espoir souci joie fromage pain pomme café lait sucre beurre
déjeuner dîner vacances voyage promenade région département quartier bibliothèque musée théâtre
""",
    "es": """
el la los las de del un una y a en es que se no por con para su sus al lo como más pero sus le ya o este
esta sí porque muy sin sobre también me hasta hay donde quien desde todo nos durante todos uno les ni contra
otros ese eso ante ellos e esto mí antes algunos qué unos yo otro otras otra él tanto esa estos mucho
quienes nada muchos cual poco ella estar estas algunas algo nosotros año años día días tiempo ciudad país
mundo vida casa escuela niño niños mujer hombre familia amigo amigos trabajo dinero agua calle camino
estación puente jardín bosque montaña río mar isla pueblo mercado iglesia ayuntamiento alcalde gobierno
ciudadanos gente pregunta respuesta razón ejemplo resultado informe periódico noticia semana mes tarde
mañana noche hora minuto siglo verano invierno primavera otoño lluvia nieve sol cielo árbol flor pájaro
perro gato caballo mesa silla ventana puerta habitación cocina cama lámpara reloj libro página carta
imagen música canción película idioma palabra frase alumno profesor médico panadero agricultor conductor
ingeniero artista ir venir ver dar tomar encontrar pensar creer saber aprender leer escribir hablar
escuchar jugar trabajar vivir construir comprar vender conducir correr comer beber dormir ayudar buscar
mostrar traer tener quedar empezar abrir cerrar explicar entender contar bueno malo grande pequeño largo
corto alto bajo viejo joven caliente frío claro oscuro rápido lento bonito pesado ligero sencillo
importante posible verdadero falso nuevo temprano tarde fuerte débil rico pobre feliz cansado tranquilo
abierto realmente quizás naturalmente sobre todo juntos después entonces antiguamente ya enseguida
finalmente de repente ayer mañana aproximadamente bastante mucho poco demasiado casi nunca siempre
a menudo a veces por eso sin embargo aunque cuando para que entre detrás delante empresa economía
política sociedad investigación ciencia desarrollo administración transporte energía medio ambiente
salud educación cultura historia futuro experiencia opinión decisión cambio solución problema proyecto
precio coste impuesto banco crédito crecimiento comercio producto máquina fábrica técnica ordenador red
datos programa tamaño color sentimiento pensamiento recuerdo esperanza preocupación alegría queso pan
manzana café leche azúcar mantequilla almuerzo cena vacaciones viaje paseo región provincia barrio
biblioteca museo teatro
""",
    "ja": """
の に は を た が で て と し れ さ ある いる も する から な こと として い や れる など なっ ない この ため その
あっ よう また もの という あり まで られ なる へ か だ これ によって により おり より による ず なり られる
において ば なかっ なく しかし について せ だっ その後 できる それ う ので なお のみ でき き つ における
および いう さらに でも ら たり その他 に関する たち ます ん なら 日本 東京 大阪 京都 北海道 沖縄 学校
先生 学生 子供 家族 友達 会社 仕事 時間 今日 明日 昨日 毎日 天気 電車 駅 道 橋 公園 庭 森 山 川 海 島
村 町 市 県 国 世界 政府 市長 大臣 市民 人々 質問 答え 理由 例 結果 報告 新聞 記事 週 月 年 夜 朝
昼 夕方 時 分 世紀 夏 冬 春 秋 雨 雪 太陽 空 木 花 鳥 犬 猫 馬 机 椅子 窓 扉 部屋 台所 寝台 時計 本
手紙 写真 音楽 歌 映画 言葉 文章 医者 技術者 画家 運転手 農家 行く 来る 見る 食べる 飲む 話す 聞く
書く 読む 学ぶ 教える 考える 思う 知る 作る 買う 売る 住む 働く 遊ぶ 走る 歩く 寝る 起きる 開ける 閉める
始める 終わる 助ける 探す 見せる 持つ 待つ 使う 大きい 小さい 長い 短い 高い 低い 古い 新しい 暑い
寒い 明るい 暗い 速い 遅い 美しい 重い 軽い 簡単 大切 可能 本当 早い 強い 弱い 楽しい 静か 有名
経済 政治 社会 研究 科学 開発 交通 環境 健康 教育 文化 歴史 未来 経験 意見 決定 変化 解決 問題
計画 価格 費用 税金 銀行 成長 貿易 製品 機械 工場 技術 電話 情報 番組 色 気持ち 思い出 希望 心配
喜び 料理 朝食 昼食 夕食 休暇 旅行 散歩 地域 図書館 博物館 劇場 大学 病院 市場 祭り 季節 自然
""",
}

# Syllables for inventing rare words (names, places, jargon): rare words give fastText and MinHash a long tail.
SYLLABLES = {
    "en": "ba be bi bo bu ca co cu da de di do fa fe fi fo ga go ha he hi ho ja ka ke ki la le li lo lu ma me mi "
          "mo na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa we wi ya yo za ze ston ford "
          "ley ton wick ham by ster ing er",
    "de": "ba be bi bo da de di do fa fe fi ga ge gi ha he hi ka ke ki la le li ma me mi na ne ni ra re ri sa se "
          "si ta te ti wa we wi za ze zi burg dorf hausen stein bach feld heim berg wald mann ung keit lich sch",
    "fr": "ba be bi bo da de di do fa fe fi ga ge gi la le li ma me mi na ne ni pa pe pi ra re ri sa se si ta te "
          "ti va ve vi ville mont champ bois val eau ette ière eur ois ais ier é è",
    "es": "ba be bi bo da de di do fa fe fi ga ge gi la le li ma me mi na ne ni pa pe pi ra re ri sa se si ta te "
          "ti va ve vi za ce ci llo lla ña ño dad ción ero era ito ita ez",
    "ja": "ア イ ウ エ オ カ キ ク ケ コ サ シ ス セ ソ タ チ ツ テ ト ナ ニ ヌ ネ ノ ハ ヒ フ ヘ ホ マ ミ ム メ モ ヤ "
          "ユ ヨ ラ リ ル レ ロ ワ ン ガ ギ グ ゲ ゴ ザ ジ ズ ゼ ゾ ダ デ ド バ ビ ブ ベ ボ パ ピ プ ペ ポ",
}

# Page furniture: menu items, cookie banner, footer, sidebar heading, per language.
FURNITURE = {
    "en": {
        "menu": "Home|News|Sports|Business|Culture|Travel|About us|Contact|Subscribe|Log in|Search",
        "cookie": "We use cookies to improve your experience. By continuing to browse you accept our cookie policy.",
        "accept": "Accept all",
        "footer": "All rights reserved.|Privacy policy|Terms of use|Imprint|Careers|Advertise with us",
        "related": "Related articles", "popular": "Most popular", "share": "Share this article",
    },
    "de": {
        "menu": "Startseite|Nachrichten|Sport|Wirtschaft|Kultur|Reisen|Über uns|Kontakt|Abonnieren|Anmelden|Suche",
        "cookie": "Wir verwenden Cookies, um Ihr Erlebnis zu verbessern. Mit der Nutzung stimmen Sie zu.",
        "accept": "Alle akzeptieren",
        "footer": "Alle Rechte vorbehalten.|Datenschutz|Nutzungsbedingungen|Impressum|Karriere|Werbung",
        "related": "Ähnliche Artikel", "popular": "Meistgelesen", "share": "Artikel teilen",
    },
    "fr": {
        "menu": "Accueil|Actualités|Sport|Économie|Culture|Voyages|Qui sommes-nous|Contact|S'abonner|Connexion",
        "cookie": "Nous utilisons des cookies pour améliorer votre expérience. En poursuivant, vous acceptez.",
        "accept": "Tout accepter",
        "footer": "Tous droits réservés.|Confidentialité|Conditions d'utilisation|Mentions légales|Emplois",
        "related": "Articles similaires", "popular": "Les plus lus", "share": "Partager cet article",
    },
    "es": {
        "menu": "Inicio|Noticias|Deportes|Economía|Cultura|Viajes|Quiénes somos|Contacto|Suscribirse|Entrar",
        "cookie": "Utilizamos cookies para mejorar su experiencia. Si continúa navegando, acepta su uso.",
        "accept": "Aceptar todo",
        "footer": "Todos los derechos reservados.|Privacidad|Condiciones de uso|Aviso legal|Empleo|Publicidad",
        "related": "Artículos relacionados", "popular": "Lo más leído", "share": "Compartir este artículo",
    },
    "ja": {
        "menu": "ホーム|ニュース|スポーツ|経済|文化|旅行|会社概要|お問い合わせ|購読|ログイン|検索",
        "cookie": "当サイトでは利便性向上のためにクッキーを使用しています。閲覧を続けると同意したものとみなします。",
        "accept": "すべて同意する",
        "footer": "無断転載を禁じます。|プライバシーポリシー|利用規約|運営会社|採用情報|広告掲載",
        "related": "関連記事", "popular": "人気記事", "share": "この記事を共有",
    },
}

TLDS = {"en": ("com", "org", "net", "co.uk"), "de": ("de", "at", "ch"), "fr": ("fr", "be"), "es": ("es", "mx"),
        "ja": ("jp", "co.jp")}


def common_words(lang: str) -> list[str]:
    """Distinct common words of `lang`, first occurrence order (≈ frequency order)."""
    seen: dict[str, None] = {}
    for w in COMMON[lang].split():
        seen.setdefault(w, None)
    return list(seen)
